"""OpenTelemetry traces (official SDK, in-memory exporter): one span per request, with child spans for
admission, the upstream call and the ledger record; nothing at all when tracing is off."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
import requests
import uvicorn
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cbgate.config import ConfigError, load_settings
from cbgate.core.tracing import Tracing, tracing_from_env
from cbgate.http.app import App
from tests.support.catalog import write_catalog
from tests.support.fake_engine import FakeEngine
from tests.support.gateway import free_port, make_admin
from tests.support.wait import wait_until

MODEL = "gemma-3-270m"


@pytest.fixture
def traced(tmp_path):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    data_dir = tmp_path / "data"
    write_catalog(data_dir, [])  # the embedded model on the fake engine
    admin = make_admin(data_dir)
    env_id = admin.create_env()
    _, key = admin.create_key(env_id)
    app = App(load_settings(str(data_dir), env={**admin.settings.env_vars, **FakeEngine(tmp_path / "engine").env}),
              tracing=Tracing(provider))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", key, exporter
    server.should_exit = True
    thread.join(timeout=30)
    admin.store.close()


def finished_spans(exporter, count: int) -> list:
    """The finished spans, once `count` are (the request span ends just after the last byte went out)."""
    wait_until(lambda: len(exporter.get_finished_spans()) >= count, f"{count} finished spans")
    return list(exporter.get_finished_spans())


def test_a_chat_request_is_one_trace_with_admission_upstream_and_ledger(traced):
    url, key, exporter = traced
    answer = requests.post(f"{url}/v1/ai/cloudbase/chat/completions", timeout=30,
                           headers={"Authorization": f"Bearer {key}"},
                           json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert answer.status_code == 200
    spans = {s.name: s for s in finished_spans(exporter, 4)}
    root = spans["POST /v1/ai/cloudbase/chat/completions"]
    assert root.parent is None and root.attributes["http.response.status_code"] == 200
    assert root.attributes["cbgate.request_id"] == answer.headers["x-request-id"]
    for child in ("cbgate.admission", "cbgate.upstream", "cbgate.ledger"):
        assert spans[child].parent.span_id == root.context.span_id, child
        assert spans[child].context.trace_id == root.context.trace_id
    assert spans["cbgate.upstream"].attributes["gen_ai.request.model"] == MODEL


def test_a_refused_request_carries_its_code(traced):
    url, _, exporter = traced
    requests.post(f"{url}/v1/ai/cloudbase/chat/completions", json={}, timeout=30,
                  headers={"Authorization": "Bearer cbsk_nope"})
    (span,) = finished_spans(exporter, 1)
    assert span.attributes["http.response.status_code"] == 401
    assert span.attributes["cbgate.code"] == "INVALID_ACCESS_TOKEN"


def test_tracing_is_off_unless_asked_and_a_wrong_mode_is_named():
    assert not tracing_from_env({}).on
    with tracing_from_env({}).span("x") as span:
        assert span is None
    console = tracing_from_env({"CBGATE_TRACING": "console"})
    assert console.on
    console.shutdown()
    with pytest.raises(ConfigError, match="CBGATE_TRACING"):
        tracing_from_env({"CBGATE_TRACING": "jaeger"})
