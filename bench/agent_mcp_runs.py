"""What an MCP service costs an agent's run when the model calls no tool: the run opens an MCP session with the
service (initialize, notifications/initialized, tools/list) and ends it (DELETE). Sequential AG-UI runs of two
agents on the same fake upstream, one with the test MCP server (PyPI `mcp`, in this process) as its service
and one without, alternating, on an in-thread gateway. Prints medians in ms (the machine is shared: compare
within one run). `PYTHONPATH=src:. .venv/bin/python -m bench.agent_mcp_runs [N]`."""
from __future__ import annotations

import pathlib
import statistics
import sys
import tempfile
import time

import requests

from cbgate.core.agent_admin import AgentSpec
from tests.support.catalog import write_catalog
from tests.support.fake_upstream import Reply, start_fake_upstream
from tests.support.gateway import start_in_thread
from tests.support.mcp_server import start_mcp_server


def main(rounds: int) -> None:
    fake = start_fake_upstream(Reply(content="one two three"))
    server = start_mcp_server()
    data = pathlib.Path(tempfile.mkdtemp(prefix="cbgate-bench-agent-mcp-")) / "data"
    write_catalog(data, [{"name": "up", "deployments": [{"kind": "openai", "base_url": fake.url, "name": "up-main",
                                                          "model": "m"}]}])
    gw = start_in_thread(data, env={"CBGATE_UPSTREAM_ALLOW": "127.0.0.1"})
    gw.admin.mcp.create(gw.env_id, "tools", server.url)
    agents = {"without": gw.admin.agents.create(gw.env_id, AgentSpec(name="plain", model="up")).id,
              "with MCP": gw.admin.agents.create(gw.env_id, AgentSpec(name="tooled", model="up",
                                                                      mcp_services=["tools"])).id}
    gw.wait_for_snapshot()
    session = requests.Session()
    headers = {"Authorization": f"Bearer {gw.key}", "Accept": "text/event-stream"}
    body = {"messages": [{"id": "1", "role": "user", "content": "hi"}]}

    def run(agent_id: str) -> None:
        resp = session.post(f"{gw.url}/v1/aibot/bots/{agent_id}/send-message", json=body, headers=headers)
        assert resp.status_code == 200 and b"RUN_FINISHED" in resp.content

    try:
        for agent_id in list(agents.values()) * 10:  # warm up both
            run(agent_id)
        took: dict[str, list[float]] = {name: [] for name in agents}
        for i in range(rounds):
            for name in (list(agents) if i % 2 == 0 else list(agents)[::-1]):
                started = time.perf_counter()
                run(agents[name])
                took[name].append((time.perf_counter() - started) * 1000)
        for name, values in took.items():
            print(f"{name}: median {statistics.median(values):.2f} ms")
    finally:
        gw.stop()
        server.stop()
        fake.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
