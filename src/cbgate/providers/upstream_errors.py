"""The one mapping from an upstream client's exceptions to our errors, for the JSON and the streaming path
alike: a timeout is a 504 ModelRequestTimeout, everything else a 502 ModelRequestFailed (CloudBase's
AI_MODEL_REQUEST_FAILED), with the deployment's secret masked out of the message.

It covers this gateway's own HTTP/1.1 client (`http1_conn`), the egress policy's refusal, and aiohttp's
client exceptions (aiohttp still carries the MCP and agent traffic); `tests/providers/test_upstream_errors.py`
enumerates those modules' exception classes and checks that each has a row here.
"""
from __future__ import annotations

import aiohttp

from cbgate.errors import ModelRequestFailed, ModelRequestTimeout
from cbgate.providers import http1_conn as h1
from cbgate.providers.netguard import EgressRefused

# (exception classes, what happened, retried before the first byte?), the first match wins: more specific
# rows first.
KINDS: tuple[tuple[tuple[type[BaseException], ...], str, bool], ...] = (
    ((EgressRefused,), "refused", False),
    ((h1.ConnectError, aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError), "unreachable", True),
    ((h1.ReadTimeout, aiohttp.ServerTimeoutError, TimeoutError), "timeout", False),
    ((h1.ConnectionClosed, aiohttp.ServerDisconnectedError), "closed", True),
    ((h1.BodyIncomplete, aiohttp.ClientPayloadError), "broke off", False),
    ((h1.ProtocolError, aiohttp.ClientResponseError, aiohttp.InvalidURL, aiohttp.ClientConnectionError,
      aiohttp.ClientError, h1.ClientClosed, h1.HTTPClientError, OSError), "failed", False),
)

# What a caller catches around a call and hands to `upstream_failure` (anything else is a bug of ours).
CLIENT_ERRORS: tuple[type[BaseException], ...] = tuple(c for classes, _, _ in KINDS for c in classes)


def kind_of(exc_type: type[BaseException]) -> tuple[str, bool] | None:
    """What an exception class means to us, and whether it may be retried; None: not an upstream failure."""
    for classes, kind, retryable in KINDS:
        if issubclass(exc_type, classes):
            return kind, retryable
    return None


def retryable(exc: BaseException) -> bool:
    known = kind_of(type(exc))
    return known is not None and known[1]


def upstream_failure(endpoint, exc: BaseException) -> ModelRequestFailed:
    """Our error for `exc`, raised while asking `endpoint` (an upstream_http.Endpoint) or reading its answer."""
    known = kind_of(type(exc))
    kind = known[0] if known is not None else "failed"
    name = endpoint.name
    detail = endpoint.scrub(_describe(exc))
    if kind == "refused":
        return ModelRequestFailed(f"upstream {name} refused: {detail}")
    if kind == "timeout":
        return ModelRequestTimeout(f"upstream {name} {detail}" if isinstance(exc, h1.ReadTimeout)
                                   else f"upstream {name} did not answer in time")
    if kind == "unreachable":
        return ModelRequestFailed(f"upstream {name} could not be reached: {detail}")
    if kind == "closed":
        return ModelRequestFailed(f"upstream {name} closed the connection")
    if kind == "broke off":
        return ModelRequestFailed(f"upstream {name} broke off its answer: {detail}")
    return ModelRequestFailed(f"upstream {name} failed: {detail}")


def _describe(exc: BaseException) -> str:
    """The exception's text, or its class name (some aiohttp exceptions cannot print a half-built self)."""
    try:
        return str(exc) or type(exc).__name__
    except Exception:  # noqa: BLE001 - any failure to describe is described by the class name
        return type(exc).__name__
