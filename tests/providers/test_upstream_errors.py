"""The one mapping from upstream client exceptions to our errors: every exception class the clients can
raise (ours, the egress policy's, aiohttp's) has its row, and each becomes a 502 AI_MODEL_REQUEST_FAILED
(504 for a timeout) whose message never carries the deployment's secret. The classes are read from the
modules, not listed here, so a class added there fails this test until it is mapped."""
from __future__ import annotations

import inspect

import aiohttp
import aiohttp.client_exceptions
import pytest

from cbgate.errors import ModelRequestFailed, ModelRequestTimeout
from cbgate.providers import http1_conn, http1_pool, netguard
from cbgate.providers.upstream_errors import CLIENT_ERRORS, kind_of, retryable, upstream_failure
from cbgate.providers.upstream_http import Endpoint

SECRET = "sk-mapping-secret-0123456789"
ENDPOINT = Endpoint("up", "http://127.0.0.1:9/v1/chat/completions", {}, SECRET, False)


def exception_classes(*modules) -> list[type[BaseException]]:
    found = set()
    for module in modules:
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                found.add(value)
    return sorted(found, key=lambda c: (c.__module__, c.__name__))


OURS = exception_classes(http1_conn, http1_pool, netguard)
# aiohttp's client raises ClientError's subtree (its documented contract) and asyncio's TimeoutError; the
# WebSocket message error is raised only by a WebSocket's receive_json, which the gateway never opens.
AIOHTTP = [c for c in exception_classes(aiohttp.client_exceptions) if c is not aiohttp.WSMessageTypeError]


def test_the_modules_are_read():
    assert {http1_conn.ConnectError, http1_conn.ReadTimeout, netguard.EgressRefused} <= set(OURS)
    assert {aiohttp.ClientConnectorError, aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError} <= set(AIOHTTP)
    assert len(AIOHTTP) >= 25


def instance(cls: type[BaseException]) -> BaseException:
    """An instance whose text carries the secret, however the class wants to be built."""
    exc = cls.__new__(cls)
    exc.args = (f"failed with key {SECRET}",)
    return exc


@pytest.mark.parametrize("cls", OURS + AIOHTTP + [TimeoutError, OSError, ConnectionResetError], ids=lambda c: c.__name__)
def test_every_client_exception_is_mapped(cls):
    assert kind_of(cls) is not None, f"{cls.__module__}.{cls.__name__} has no row in upstream_errors.KINDS"
    assert issubclass(cls, CLIENT_ERRORS)
    failure = upstream_failure(ENDPOINT, instance(cls))
    assert isinstance(failure, ModelRequestFailed)
    assert failure.code == "AI_MODEL_REQUEST_FAILED"
    assert failure.status == (504 if isinstance(failure, ModelRequestTimeout) else 502)
    assert SECRET not in failure.message and failure.message.startswith("upstream up ")


def test_what_is_retried_is_what_cannot_have_reached_the_upstream():
    assert retryable(http1_conn.ConnectError("x")) and retryable(http1_conn.ConnectTimeout("x"))
    assert retryable(http1_conn.ConnectionClosed("x"))
    for exc in (http1_conn.ReadTimeout("x"), http1_conn.BodyIncomplete("x"), http1_conn.ProtocolError("x"),
                netguard.EgressRefused("x"), netguard.InvalidUpstreamURL("x")):
        assert not retryable(exc), exc
    assert isinstance(upstream_failure(ENDPOINT, http1_conn.ReadTimeout("went quiet for 1s")), ModelRequestTimeout)
    assert "refused" in upstream_failure(ENDPOINT, netguard.EgressRefused("no")).message
