#!/usr/bin/env python3
"""What finding a request's route costs, on the gateway's real route table, in one run: trying every row
(what each request paid before the table remembered paths) against a remembered path.

    PYTHONPATH=src .venv/bin/python bench/route_table.py [--rounds 20000]

Writes bench/results/route-table.md.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))
from cbgate.http.route_table import RouteTable  # noqa: E402
from tests.support.gateway import start_in_thread  # noqa: E402

PATHS = ("/v1/ai/cloudbase/chat/completions", "/v1/messages", "/v1/aibot/bots/abc/send-message",
         "/v1/cloudrun/svc/messages", "/admin/v1/envs/x/prices", "/no/such/path")


def per_call_us(fn, path: str, rounds: int) -> float:
    began = time.process_time()
    for _ in range(rounds):
        fn(path)
    return (time.process_time() - began) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    args = parser.parse_args()
    gateway = start_in_thread(Path(tempfile.mkdtemp()) / "data")
    try:
        [table] = [o for o in gc.get_objects() if isinstance(o, RouteTable)]
        rows = [(path, per_call_us(table._match, path, args.rounds), per_call_us(table._matches, path, args.rounds))
                for path in PATHS]
    finally:
        gateway.stop()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [f"# Route lookup, {len(table.rows)} rows, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load {load}",
             "", f"`PYTHONPATH=src .venv/bin/python bench/route_table.py --rounds {args.rounds}` (CPU time per lookup)",
             "", "| path | every row tried | remembered | ratio |", "|---|---:|---:|---:|"]
    lines += [f"| `{p}` | {a:.2f} us | {b:.2f} us | {a / b:.0f}x |" for p, a, b in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    (REPO / "bench" / "results" / "route-table.md").write_text(text)


if __name__ == "__main__":
    main()
