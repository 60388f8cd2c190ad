"""Hypothesis against the MCP surface (/v1/cloudrun/{service}/messages) in front of a real MCP server:
malformed JSON-RPC, unknown methods, batches, huge messages, forged session ids and odd headers. The rule
of rules.py holds (no 5xx without a code, no traceback, no stall), and the ledger still drains."""
from __future__ import annotations

import orjson
import pytest
import requests
from hypothesis import given, strategies as st

from cbgate.store.usage import MCP_SURFACE
from tests.fuzz.rules import STALL_SECONDS, Tally, check_answer, fuzz_settings
from tests.fuzz.strategies import JSON_VALUES, TEXT, dumps
from tests.support.gateway import start_in_thread
from tests.support.ledger import wait_for_records
from tests.support.mcp_server import start_mcp_server

METHODS = ["initialize", "tools/list", "tools/call", "resources/read", "ping", "notifications/initialized",
           "server/discover", "nope/unknown", "", "tools/call\u0000", "x" * 300]
MESSAGE_KEYS = ["jsonrpc", "id", "method", "params", "result", "error"]


@st.composite
def jsonrpc_bodies(draw):
    """A near-valid JSON-RPC message with parts broken, a batch of them, a huge one, or anything at all."""
    def message():
        body = {"jsonrpc": "2.0", "id": draw(st.integers(-5, 5) | TEXT), "method": draw(st.sampled_from(METHODS))}
        if body["method"] == "tools/call":
            body["params"] = {"name": draw(st.sampled_from(["add", "secret", "nope"]) | TEXT),
                              "arguments": draw(JSON_VALUES)}
        for key in draw(st.lists(st.sampled_from(MESSAGE_KEYS), max_size=3)):
            body[key] = draw(JSON_VALUES)
        return body
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return dumps(draw(JSON_VALUES))
    if kind == 1:
        return draw(st.binary(max_size=64))
    if kind == 2:
        return dumps([message() for _ in range(draw(st.integers(0, 70)))])
    if kind == 3:
        return dumps({**message(), "params": {"name": "add", "arguments": {"a": "x" * 2_000_000}}})
    return dumps(message())


HEADERS = st.fixed_dictionaries({}, optional={
    "Accept": st.sampled_from(["application/json", "text/event-stream", "application/json, text/event-stream", "*/*"]),
    "Content-Type": st.sampled_from(["application/json", "text/plain"]),
    "Mcp-Session-Id": st.sampled_from(["mcps_00", "", "x" * 200]),
    "MCP-Protocol-Version": st.sampled_from(["2025-11-25", "2026-07-28", "1999-01-01"]),
})


@pytest.fixture(scope="module")
def fronted(tmp_path_factory):
    server = start_mcp_server()
    gw = start_in_thread(tmp_path_factory.mktemp("mcp-fuzz") / "data", env={"CBGATE_UPSTREAM_ALLOW": "127.0.0.1"})
    gw.admin.mcp.create(gw.env_id, "tools", server.url)
    gw.wait_for_snapshot()
    yield gw
    gw.stop()
    server.stop()


def test_malformed_json_rpc(fronted):
    tally = Tally("MCP surface")
    url = f"{fronted.url}/v1/cloudrun/tools/messages"

    @fuzz_settings(300)
    @given(body=jsonrpc_bodies(), headers=HEADERS, method=st.sampled_from(["POST"] * 8 + ["GET", "DELETE", "PUT"]))
    def run(body, headers, method):
        reply = requests.request(method, url, data=body if method == "POST" else None, timeout=STALL_SECONDS,
                                 headers={**fronted.headers(), **headers}, stream=method == "GET")
        # a GET may open an event stream that stays open (the SSE transport): its first read is enough
        text = next(reply.iter_content(None), b"").decode("utf-8", "replace") if method == "GET" else reply.text
        reply.close()
        tally.note(reply.status_code)
        check_answer(reply.status_code, reply.headers.get("content-type", ""), text, openai_stream=False)
        if 400 <= reply.status_code < 500 and reply.headers.get("content-type", "").startswith("application/json"):
            body = orjson.loads(text)
            code = body.get("code") or ((body.get("error") or {}).get("data") or {}).get("code") \
                or (body.get("error") or {}).get("code")  # the server's own refusal, passed on as it is
            assert code, text[:300]

    run()
    print(tally.report())
    assert 200 in tally.statuses and any(400 <= s < 500 for s in tally.statuses)
    _assert_ledger_drains(fronted)


def _assert_ledger_drains(gw) -> None:
    from tests.mcp.test_mcp_faults import modern_call
    body, headers = modern_call(1, "secret", {})  # stands alone, whatever sessions the fuzz left
    reply = requests.post(f"{gw.url}/v1/cloudrun/tools/messages", json=body, headers={**gw.headers(), **headers},
                          timeout=30)
    assert reply.status_code == 200
    request_id = reply.headers["x-request-id"]
    assert wait_for_records(gw.admin.store, gw.env_id, 1,
                            lambda r: r.surface == MCP_SURFACE and r.request_id.startswith(request_id))
