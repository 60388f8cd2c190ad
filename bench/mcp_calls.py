"""What the gateway adds to one MCP tool call: sequential sessionless `tools/call`s (JSON answers) straight to a
real MCP server (PyPI `mcp`'s MCPServer on loopback) and through an in-thread gateway fronting it, alternating.
Prints medians and p90 in ms and the difference (the machine is shared: only one run's difference means much).
`PYTHONPATH=src:. .venv/bin/python -m bench.mcp_calls [N]`."""
from __future__ import annotations

import pathlib
import statistics
import sys
import tempfile
import time

import requests

from tests.mcp.test_mcp_faults import modern_call
from tests.support.gateway import start_in_thread
from tests.support.mcp_server import start_mcp_server


def main(rounds: int) -> None:
    server = start_mcp_server()
    gw = start_in_thread(pathlib.Path(tempfile.mkdtemp(prefix="cbgate-bench-mcp-")) / "data",
                         env={"CBGATE_UPSTREAM_ALLOW": "127.0.0.1"})
    try:
        gw.admin.mcp.create(gw.env_id, "tools", server.url)
        gw.admin.set_env_limits(gw.env_id, {"concurrency": None, "rpm": None})
        gw.wait_for_snapshot()
        body, headers = modern_call(1, "add", {"a": 1, "b": 2})
        targets = {"direct": (server.url, headers, requests.Session()),
                   "gateway": (f"{gw.url}/v1/cloudrun/tools/messages", {**headers, **gw.headers()}, requests.Session())}
        times: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(rounds + 10):
            for name, (url, sent, session) in targets.items():
                started = time.perf_counter()
                answer = session.post(url, json=body, headers=sent, timeout=30)
                times[name].append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
        for name, found in times.items():
            found = sorted(found[10:])  # the first calls warm connections up
            print(f"{name}: median {statistics.median(found) * 1000:.2f} ms, "
                  f"p90 {found[int(len(found) * 0.9)] * 1000:.2f} ms, n={len(found)}")
        added = statistics.median(times["gateway"][10:]) - statistics.median(times["direct"][10:])
        print(f"added by the gateway (median): {added * 1000:.2f} ms")
    finally:
        gw.stop()
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
