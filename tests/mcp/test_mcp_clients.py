"""The official MCP client reaches a real MCP server through cbgate over Streamable HTTP (sessions and the
newer stateless protocol) and over SSE: initialize, tools/list, tools/call with a progress notification,
a resource; each tool call lands in the ledger and in /metrics."""
from __future__ import annotations

import pytest

from cbgate.store.usage import MCP_SURFACE
from tests.mcp.clients import endpoint, run, sse, streamable
from tests.support.ledger import wait_for_records


async def _session(client) -> dict:
    tools = sorted(t.name for t in (await client.list_tools()).tools)
    progress = []

    async def on_progress(done, total, message):
        progress.append((done, total, message))

    called = await client.call_tool("add", {"a": 2, "b": 3}, progress_callback=on_progress)
    resource = await client.read_resource("demo://greeting")
    return {"tools": tools, "sum": called.structured_content, "progress": progress,
            "resource": resource.contents[0].text}


EXPECTED = {"tools": ["add", "fail", "secret", "stall"], "sum": {"result": 5}, "progress": [(1.0, 2.0, "half way")],
            "resource": "hello through the gateway"}


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_streamable_http_through_the_gateway(mcp_gateway, mcp_server, mode):
    async def scenario():
        async with streamable(endpoint(mcp_gateway.url, "tools"), mcp_gateway.key, mode) as client:
            return await _session(client)

    assert run(scenario()) == EXPECTED
    rows = wait_for_records(mcp_gateway.admin.store, mcp_gateway.env_id, 1, lambda r: r.surface == MCP_SURFACE)
    assert [(r.group_name, r.model, r.outcome, r.status, r.code) for r in rows] == [("tools", "add", "ok", 200, None)]
    assert rows[0].latency_ms > 0 and rows[0].key_id is not None
    assert mcp_gateway.app.metrics.mcp_calls[(mcp_gateway.env_id, "tools", "add", "ok")] == 1


def test_sse_transport_through_the_gateway(mcp_gateway):
    async def scenario():
        async with sse(endpoint(mcp_gateway.url, "tools"), mcp_gateway.key) as client:
            return await _session(client)

    assert run(scenario()) == EXPECTED
    rows = wait_for_records(mcp_gateway.admin.store, mcp_gateway.env_id, 1, lambda r: r.surface == MCP_SURFACE)
    assert [(r.model, r.outcome) for r in rows] == [("add", "ok")]


@pytest.mark.parametrize("client", ["streamable", "sse"])
def test_a_server_on_the_sse_transport(mcp_gateway, mcp_server, client):
    """`--transport sse`: the gateway keeps the server's event stream per session and routes each answer (and
    each progress notification) to the request that asked."""
    mcp_gateway.admin.mcp.create(mcp_gateway.env_id, "legacy", mcp_server.sse_url, transport="sse")
    mcp_gateway.wait_for_snapshot()
    connect = streamable if client == "streamable" else sse

    async def scenario():
        async with connect(endpoint(mcp_gateway.url, "legacy"), mcp_gateway.key) as session:
            return await _session(session)

    assert run(scenario()) == EXPECTED
    rows = wait_for_records(mcp_gateway.admin.store, mcp_gateway.env_id, 1, lambda r: r.surface == MCP_SURFACE)
    assert [(r.group_name, r.model, r.outcome) for r in rows] == [("legacy", "add", "ok")]
