"""OpenTelemetry traces, off by default: one span per request with child spans for admission, each upstream
attempt and the ledger record. `CBGATE_TRACING=otlp` exports over OTLP/HTTP (the SDK reads the standard
`OTEL_EXPORTER_OTLP_*` variables; `OTEL_SERVICE_NAME` defaults to cbgate), `console` prints spans.

When tracing is off a span is one shared no-op context manager, so the hot path pays a function call.
The SDK is an optional dependency: `pip install 'cbgate[otel]'`.
"""
from __future__ import annotations

import contextlib
from typing import Any

from cbgate.config import ConfigError

MODES = ("off", "otlp", "console")
_NO_SPAN = contextlib.nullcontext()


class Tracing:
    def __init__(self, provider: Any = None):
        self.provider = provider  # an opentelemetry.sdk.trace.TracerProvider, or None: tracing is off
        self.tracer = provider.get_tracer("cbgate") if provider is not None else None

    @property
    def on(self) -> bool:
        return self.tracer is not None

    def span(self, name: str, attributes: dict[str, Any] | None = None):
        """A child of the current span (the request's), ended when the block ends; errors are recorded."""
        if self.tracer is None:
            return _NO_SPAN
        return self.tracer.start_as_current_span(name, attributes=attributes)

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()  # exports what is still batched


NO_TRACING = Tracing()


def tracing_from_env(env: dict[str, str]) -> Tracing:
    mode = env.get("CBGATE_TRACING", "off").lower()
    if mode not in MODES:
        raise ConfigError(f"CBGATE_TRACING must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off":
        return NO_TRACING
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise ConfigError("CBGATE_TRACING needs the OpenTelemetry SDK: pip install 'cbgate[otel]'") from None
    if mode == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigError("CBGATE_TRACING=otlp needs the OTLP exporter: pip install 'cbgate[otel]'") from None
        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "cbgate")}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider)
