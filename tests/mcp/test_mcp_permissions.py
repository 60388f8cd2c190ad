"""Permissions at dispatch: per key and per tool, a publishable key, another environment's service, and a
revoked grant that stays revoked, even inside a session opened while it was granted."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from mcp.shared.exceptions import MCPError

from cbgate.core.permissions import KeyPermissions, parse_mcp_specs
from cbgate.store.usage import MCP_SURFACE
from tests.mcp.clients import endpoint, run, sse, streamable
from tests.support.ledger import wait_for_records

JS_DIR = Path(__file__).resolve().parents[1] / "js"


def key_with(gw, *specs: str, kind: str = "server") -> tuple[str, str]:
    row, plain = gw.admin.create_key(gw.env_id, kind, permissions=KeyPermissions(mcp=parse_mcp_specs(list(specs))))
    gw.wait_for_snapshot()
    return row.id, plain


async def _listed_and_refused(client) -> tuple[list[str], dict]:
    listed = sorted(t.name for t in (await client.list_tools()).tools)
    with pytest.raises(MCPError) as refused:
        await client.call_tool("secret", {})
    return listed, {"code": refused.value.error.code, "cloudbase": (refused.value.error.data or {}).get("code")}


@pytest.mark.parametrize("transport", ["streamable", "sse"])
def test_a_key_sees_and_calls_only_its_tools(mcp_gateway, mcp_server, transport):
    _, key = key_with(mcp_gateway, "tools:add,stall")
    before = mcp_server.seen.get("secret", 0)
    connect = streamable if transport == "streamable" else sse

    async def scenario():
        async with connect(endpoint(mcp_gateway.url, "tools"), key) as client:
            listed, refused = await _listed_and_refused(client)
            added = await client.call_tool("add", {"a": 1, "b": 1})
            return listed, refused, added.structured_content

    listed, refused, added = run(scenario())
    assert listed == ["add", "stall"] and added == {"result": 2}
    assert refused == {"code": -32003, "cloudbase": "PERMISSION_DENIED"}
    assert mcp_server.seen.get("secret", 0) == before  # the refused call never reached the server
    rows = wait_for_records(mcp_gateway.admin.store, mcp_gateway.env_id, 2, lambda r: r.surface == MCP_SURFACE)
    assert sorted((r.model, r.outcome, r.code) for r in rows) == [
        ("add", "ok", None), ("secret", "refused", "PERMISSION_DENIED")]
    assert mcp_gateway.app.metrics.mcp_calls[(mcp_gateway.env_id, "tools", "secret", "refused")] == 1


def test_a_revoked_grant_stays_revoked_even_in_an_open_session(mcp_gateway):
    key_id, key = key_with(mcp_gateway, "tools:*")

    async def scenario():
        async with streamable(endpoint(mcp_gateway.url, "tools"), key) as client:
            granted = (await client.call_tool("secret", {})).content[0].text
            mcp_gateway.admin.set_key_permissions(key_id, KeyPermissions(mcp=parse_mcp_specs(["tools:add"])))
            mcp_gateway.wait_for_snapshot()
            listed, refused = await _listed_and_refused(client)
            return granted, listed, refused

    granted, listed, refused = run(scenario())
    assert granted == "classified"
    assert listed == ["add"] and refused["cloudbase"] == "PERMISSION_DENIED"
    # the stored value is the only one: nothing else re-grants what it no longer lists
    stored = next(k for k in mcp_gateway.admin.list_keys(mcp_gateway.env_id) if k.id == key_id).permissions
    assert json.loads(stored) == {"mcp": {"tools": ["add"]}}


def test_a_key_without_a_grant_for_the_service_and_a_publishable_key_are_refused(mcp_gateway):
    _, other_service = key_with(mcp_gateway, "elsewhere:*")
    _, publishable = mcp_gateway.admin.create_key(mcp_gateway.env_id, "publishable")
    mcp_gateway.wait_for_snapshot()
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for key in (other_service, publishable):
        answer = requests.post(endpoint(mcp_gateway.url, "tools"), json=body, timeout=30,
                               headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 403 and answer.json()["code"] == "PERMISSION_DENIED"


def test_a_publishable_key_with_a_grant_may_call_that_tool(mcp_gateway):
    _, key = key_with(mcp_gateway, "tools:add", kind="publishable")

    async def scenario():
        async with streamable(endpoint(mcp_gateway.url, "tools"), key) as client:
            return await _listed_and_refused(client)

    listed, refused = run(scenario())
    assert listed == ["add"] and refused["cloudbase"] == "PERMISSION_DENIED"


def test_another_environments_service_is_a_404(mcp_gateway):
    other = mcp_gateway.admin.create_env()
    _, other_key = mcp_gateway.admin.create_key(other)
    mcp_gateway.wait_for_snapshot()
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    answer = requests.post(endpoint(mcp_gateway.url, "tools"), json=body, timeout=30,
                           headers={"Authorization": f"Bearer {other_key}"})
    assert answer.status_code == 404 and answer.json()["code"] == "INVALID_PATH"
    unknown = requests.post(endpoint(mcp_gateway.url, "nothing"), json=body, timeout=30,
                            headers={"Authorization": f"Bearer {mcp_gateway.key}"})
    assert unknown.status_code == 404
    anonymous = requests.post(endpoint(mcp_gateway.url, "tools"), json=body, timeout=30)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "MISSING_CREDENTIALS"


def test_a_session_is_bound_to_the_key_that_opened_it(mcp_gateway):
    """Another key (even a permitted one) presenting a session id it did not open finds no such session."""
    _, other = key_with(mcp_gateway, "tools:*")
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}
    headers = {"Authorization": f"Bearer {mcp_gateway.key}", "Accept": "application/json, text/event-stream"}
    opened = requests.post(endpoint(mcp_gateway.url, "tools"), json=init, headers=headers, timeout=30)
    session = opened.headers["mcp-session-id"]
    assert opened.status_code == 200 and session.startswith("mcps_")
    stolen = requests.post(endpoint(mcp_gateway.url, "tools"), timeout=30,
                           json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                           headers={**headers, "Authorization": f"Bearer {other}", "Mcp-Session-Id": session})
    assert stolen.status_code == 404


def test_cloudbase_post_client_transport(mcp_gateway):
    """@cloudbase/mcp's PostClientTransport: plain JSON-RPC POSTs, no session id, no event stream."""
    node = shutil.which("node")
    if not node or not (JS_DIR / "node_modules" / "@cloudbase" / "mcp").is_dir():
        pytest.skip("@cloudbase/mcp is not installed (scripts/setup --test installs it)")
    _, key = key_with(mcp_gateway, "tools:add")
    out = subprocess.run([node, str(JS_DIR / "cloudbase_mcp_check.mjs"), endpoint(mcp_gateway.url, "tools"), key],
                         capture_output=True, text=True, timeout=120)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen.get("error") is None, (seen, out.stderr[-2000:])
    assert seen["tools"] == ["add"] and seen["sum"] == {"result": 5}
    assert seen["secret"]["code"] == -32003 and seen["secret"]["data"]["code"] == "PERMISSION_DENIED"
    assert seen["resource"] == "hello through the gateway"
