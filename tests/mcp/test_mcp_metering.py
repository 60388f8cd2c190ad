"""Every tool call is metered: `cbgate usage --by mcp` and the admin API show them by service, tool and outcome,
and /metrics counts them; limits admit them (a call over the env's rate is refused with its code)."""
from __future__ import annotations

import json

import requests

from cbgate.store.usage import MCP_SURFACE
from tests.cli.test_usage_command import usage
from tests.mcp.clients import endpoint, run, streamable
from tests.support.ledger import wait_for_records


def _calls(gw) -> None:
    async def scenario():
        async with streamable(endpoint(gw.url, "tools"), gw.key) as client:
            await client.call_tool("add", {"a": 1, "b": 2})
            await client.call_tool("add", {"a": 3, "b": 4})
            assert (await client.call_tool("fail", {})).is_error

    run(scenario())
    wait_for_records(gw.admin.store, gw.env_id, 3, lambda r: r.surface == MCP_SURFACE)


def test_usage_by_mcp_and_metrics(mcp_gateway):
    _calls(mcp_gateway)
    summary = json.loads(usage(mcp_gateway, "--env", mcp_gateway.env_id, "--by", "mcp", "--json").stdout)
    assert [(r["service"], r["tool"], r["outcome"], r["requests"]) for r in summary["rows"]] == [
        ("tools", "add", "ok", 2), ("tools", "fail", "tool_error", 1)]
    assert summary["requests"] == 3
    table = usage(mcp_gateway, "--env", mcp_gateway.env_id, "--by", "mcp").stdout.splitlines()
    assert table[0].split("\t")[:4] == ["service", "tool", "outcome", "requests"]
    assert table[1].split("\t")[:4] == ["tools", "add", "ok", "2"]

    _, operator = mcp_gateway.admin.create_operator_token()
    mcp_gateway.wait_for_snapshot()
    api = requests.get(f"{mcp_gateway.url}/admin/v1/envs/{mcp_gateway.env_id}/usage?by=mcp", timeout=30,
                       headers={"Authorization": f"Bearer {operator}"}).json()
    assert api["rows"] == summary["rows"]
    metrics = requests.get(f"{mcp_gateway.url}/metrics", headers={"Authorization": f"Bearer {operator}"},
                           timeout=30).text
    env = mcp_gateway.env_id
    assert f'cbgate_mcp_tool_calls_total{{env="{env}",service="tools",tool="add",outcome="ok"}} 2' in metrics
    assert f'cbgate_mcp_tool_calls_total{{env="{env}",service="tools",tool="fail",outcome="tool_error"}} 1' in metrics


def test_tool_calls_are_admitted_under_the_env_limits(mcp_gateway):
    mcp_gateway.admin.set_env_limits(mcp_gateway.env_id, {"rpm": 1})
    mcp_gateway.wait_for_snapshot()

    async def scenario():
        async with streamable(endpoint(mcp_gateway.url, "tools"), mcp_gateway.key) as client:
            first = await client.call_tool("add", {"a": 1, "b": 2})
            try:
                await client.call_tool("add", {"a": 1, "b": 2})
            except Exception as exc:  # MCPError: the JSON-RPC error the gateway answered with
                return first.structured_content, exc.error.data["code"]
            return first.structured_content, None

    assert run(scenario()) == ({"result": 3}, "EXCEED_RATELIMIT")
    rows = wait_for_records(mcp_gateway.admin.store, mcp_gateway.env_id, 2, lambda r: r.surface == MCP_SURFACE)
    assert sorted((r.outcome, r.code) for r in rows) == [("limited", "EXCEED_RATELIMIT"), ("ok", None)]
