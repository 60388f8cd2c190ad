"""An MCP server that stalls, dies or answers garbage gives the client a JSON-RPC error, never a hang; a
client that leaves releases its slot. Each call is in the ledger with how it ended."""
from __future__ import annotations

import http.client
from urllib.parse import urlparse

import orjson
import pytest
import requests

from cbgate.store.usage import MCP_SURFACE
from tests.mcp.clients import endpoint
from tests.support.bad_mcp_server import start_bad_mcp_server
from tests.support.ledger import wait_for_records
from tests.support.wait import wait_until

CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "lookup", "arguments": {}}}
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "cbgate-test", "version": "1"}}


def modern_call(request_id: int, tool: str, arguments: dict) -> tuple[dict, dict]:
    """A tools/call of the newer protocol, which needs no session: each POST stands alone."""
    body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": META}}
    return body, {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
                  "Mcp-Method": "tools/call", "Mcp-Name": tool}


def post(gw, service: str, body: dict, accept: str = "application/json, text/event-stream") -> requests.Response:
    return requests.post(endpoint(gw.url, service), json=body, timeout=60,
                         headers={"Authorization": f"Bearer {gw.key}", "Accept": accept})


def answer_of(response: requests.Response) -> dict:
    """The JSON-RPC answer, from a JSON body or the last message of an event stream."""
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        return orjson.loads(data[-1])
    return response.json()


def mcp_rows(gw, count: int):
    return wait_for_records(gw.admin.store, gw.env_id, count, lambda r: r.surface == MCP_SURFACE)


@pytest.mark.parametrize("mode", ["json", "sse", "html", "hangup"])
def test_a_server_answering_garbage_is_a_json_rpc_error(mcp_gateway, mode):
    bad = start_bad_mcp_server(mode)
    try:
        mcp_gateway.admin.mcp.create(mcp_gateway.env_id, "bad", bad.url)
        mcp_gateway.wait_for_snapshot()
        for accept in ("application/json, text/event-stream", "application/json"):
            answer = post(mcp_gateway, "bad", CALL, accept)
            assert answer.status_code == 200
            error = answer_of(answer)
            assert error["id"] == 7 and error["error"]["code"] == -32002
            assert error["error"]["data"]["code"] == "AI_MODEL_REQUEST_FAILED"
        rows = mcp_rows(mcp_gateway, 2)
        assert [(r.group_name, r.model, r.outcome, r.code) for r in rows] == [
            ("bad", "lookup", "failed", "AI_MODEL_REQUEST_FAILED")] * 2
    finally:
        bad.stop()


def test_a_stalled_server_times_out_on_the_services_timeout(mcp_gateway):
    bad = start_bad_mcp_server("stall")
    try:
        mcp_gateway.admin.mcp.create(mcp_gateway.env_id, "slow", bad.url, timeout=1)
        mcp_gateway.wait_for_snapshot()
        answer = post(mcp_gateway, "slow", CALL)
        error = answer_of(answer)
        assert error["id"] == 7 and error["error"]["code"] == -32001  # MCP's request timeout
        assert error["error"]["data"]["code"] == "AI_MODEL_REQUEST_FAILED" and "1s" in error["error"]["message"]
        (row,) = mcp_rows(mcp_gateway, 1)
        assert (row.outcome, row.status) == ("timeout", 504)
    finally:
        bad.stop()


def test_a_killed_server_is_a_json_rpc_error(mcp_gateway):
    bad = start_bad_mcp_server("json")
    mcp_gateway.admin.mcp.create(mcp_gateway.env_id, "gone", bad.url)
    mcp_gateway.wait_for_snapshot()
    bad.stop()  # nothing listens there any more
    error = answer_of(post(mcp_gateway, "gone", CALL))
    assert error["error"]["code"] == -32002 and "unreachable" in error["error"]["message"]
    (row,) = mcp_rows(mcp_gateway, 1)
    assert row.outcome == "failed"


def test_a_client_that_leaves_releases_its_slot(mcp_gateway, mcp_server):
    """With one slot, a call whose client hung up must not hold it: the next call is admitted."""
    mcp_gateway.admin.set_env_limits(mcp_gateway.env_id, {"concurrency": 1})
    mcp_gateway.wait_for_snapshot()
    mcp_server.release.clear()
    stalled = mcp_server.seen.get("stall", 0)
    where = urlparse(endpoint(mcp_gateway.url, "tools"))
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    body, headers = modern_call(7, "stall", {})
    conn.request("POST", where.path, orjson.dumps(body), {"Authorization": f"Bearer {mcp_gateway.key}",
                                                         "Content-Type": "application/json", **headers})
    wait_until(lambda: mcp_server.seen.get("stall", 0) > stalled, "the stalling call to reach the server")
    conn.close()  # the client leaves mid-call
    (row,) = mcp_rows(mcp_gateway, 1)
    assert (row.model, row.outcome, row.disconnected) == ("stall", "disconnected", True)
    mcp_server.release.set()
    add, headers = modern_call(8, "add", {"a": 1, "b": 2})
    answer = requests.post(endpoint(mcp_gateway.url, "tools"), json=add, timeout=60,
                           headers={"Authorization": f"Bearer {mcp_gateway.key}", **headers})
    assert answer_of(answer)["result"]["structuredContent"] == {"result": 3}
