"""What an agent run costs beside the same model call as a plain chat stream: sequential AG-UI runs of a
self-run agent and chat streams of its model (the same system prompt and message), alternating, on an
in-thread gateway over the fake upstream. Prints medians and p90 in ms and their ratio (the machine is
shared: only the ratio of one run means much). `.venv/bin/python -m bench.agent_runs [N]`."""
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

SECRET = "sk-bench-agent-runs"
INSTRUCTIONS = "Answer briefly."


def main(rounds: int) -> None:
    fake = start_fake_upstream(require_key=SECRET)
    fake.default = Reply(content="one two three four five six seven eight")
    data = pathlib.Path(tempfile.mkdtemp(prefix="cbgate-bench-agents-")) / "data"
    write_catalog(data, [{"name": "up", "deployments": [{"kind": "openai", "base_url": fake.url,
                                                          "api_key_env": "BENCH_AGENT_SECRET", "name": "up-main",
                                                          "model": "m"}]}])
    gw = start_in_thread(data, env={"BENCH_AGENT_SECRET": SECRET})
    agent = gw.admin.agents.create(gw.env_id, AgentSpec(name="bench", model="up", instructions=INSTRUCTIONS))
    gw.admin.set_env_limits(gw.env_id, {"rpm": None, "concurrency": None, "tpm": None})
    gw.wait_for_snapshot()
    session = requests.Session()
    headers = {"Authorization": f"Bearer {gw.key}", "Accept": "text/event-stream"}
    chat_body = {"model": "up", "stream": True, "messages": [{"role": "system", "content": INSTRUCTIONS},
                                                             {"role": "user", "content": "hi"}]}
    run_body = {"messages": [{"id": "1", "role": "user", "content": "hi"}]}

    def chat() -> None:
        resp = session.post(gw.chat_url("cloudbase"), json=chat_body, headers=headers)
        assert resp.status_code == 200 and resp.content.endswith(b"data: [DONE]\n\n")

    def run() -> None:
        resp = session.post(f"{gw.url}/v1/aibot/bots/{agent.id}/send-message", json=run_body, headers=headers)
        assert resp.status_code == 200 and b"RUN_FINISHED" in resp.content

    try:
        for call in (chat, run) * 20:  # warm up both paths
            call()
        took: dict[str, list[float]] = {"chat": [], "agent": []}
        for i in range(rounds):
            order = (("chat", chat), ("agent", run)) if i % 2 == 0 else (("agent", run), ("chat", chat))
            for name, call in order:
                started = time.perf_counter()
                call()
                took[name].append((time.perf_counter() - started) * 1000)
        for name, values in took.items():
            values.sort()
            print(f"{name}: median {statistics.median(values):.2f} ms, p90 {values[int(len(values) * 0.9)]:.2f} ms")
        print(f"agent / chat (median): {statistics.median(took['agent']) / statistics.median(took['chat']):.2f}")
    finally:
        gw.stop()
        fake.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
