"""An agent run waiting on an MCP tool when the gateway is told to stop (`cbgate serve`, SIGTERM) ends at
the shutdown deadline with RUN_ERROR saying why, and the process exits: the tool call does not hold it."""
from __future__ import annotations

import json
import signal

import pytest
import requests

from cbgate.core.agent_admin import AgentSpec
from tests.agents.conftest import ag_ui, tool_call, types_of
from tests.support.catalog import write_catalog
from tests.support.fake_upstream import Reply, start_fake_upstream
from tests.support.gateway import make_admin, start_serve
from tests.support.ledger import wait_for_records
from tests.support.mcp_server import start_mcp_server


@pytest.mark.timing
def test_sigterm_ends_a_run_waiting_on_a_tool_with_run_error(tmp_path):
    fake = start_fake_upstream(Reply(content="", tool_calls=[tool_call("call-wait", "tools__stall", {})]))
    server = start_mcp_server()
    data_dir = tmp_path / "data"
    write_catalog(data_dir, [{"name": "up", "deployments": [{"kind": "openai", "base_url": fake.url}]}],
                  include_embedded=False)
    loopback = {"CBGATE_UPSTREAM_ALLOW": "127.0.0.1"}
    admin = make_admin(data_dir, {"CBGATE_DATA_DIR": str(data_dir), **loopback})
    env_id = admin.create_env()
    _, key = admin.create_key(env_id)
    admin.mcp.create(env_id, "tools", server.url)  # the default timeout: longer than the shutdown deadline
    agent = admin.agents.create(env_id, AgentSpec(name="waiter", model="up", mcp_services=["tools"]))
    replica = start_serve(data_dir, {"CBGATE_SHUTDOWN_TIMEOUT": "4", **loopback})
    try:
        resp = requests.post(f"{replica.url}/v1/aibot/bots/{agent.id}/send-message", json=ag_ui("wait"),
                             headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"},
                             stream=True, timeout=30)
        lines = resp.iter_lines()
        for line in lines:  # the round's tool call went out: the gateway is now waiting on the tool
            if b"TOOL_CALL_END" in line:
                break
        replica.proc.send_signal(signal.SIGTERM)
        rest = [json.loads(line[6:]) for line in lines if line.startswith(b"data: ")]
        replica.proc.wait(15)
    finally:
        replica.proc.kill()
        server.stop()
        fake.stop()
    assert types_of(rest)[-1] == "RUN_ERROR" and "shutting down" in rest[-1]["message"]
    rows = wait_for_records(admin.store, env_id, 2)
    assert sorted(r.surface for r in rows) == ["agent", "mcp"], [(r.surface, r.code, r.outcome) for r in rows]
    admin.store.close()
