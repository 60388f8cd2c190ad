#!/usr/bin/env python3
"""Does the gateway's memory settle? RSS of one `cbgate serve` worker after 10,000 requests (and at least one
stretch of each mode) and after 100,000 (issue 17's target: within 10%), on bench/run.py's nginx fake with its
catalog, key, limits and access log, wrk at 32 connections, non-streaming and streaming in alternating
stretches; RSS is read after every stretch and all of it reported.

    python3 bench/memory.py [--requests 100000] [--first 10000] [--out bench/results/memory.md]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--first", type=int, default=10_000)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--stretch", type=float, default=4, help="seconds of wrk per stretch (modes alternate)")
    p.add_argument("--out", default=str(run.BENCH / "results" / "memory.md"))
    args = p.parse_args()
    run.preflight(argparse.Namespace(targets=["cbgate"]))
    procs = run.Processes()
    points: list[tuple[int, int, int, str]] = []  # (requests so far, json, sse, RSS KiB)
    load_start = run.load_average()
    try:
        upstream_port = run.free_port()
        run.start_fake_upstream(procs, upstream_port)
        target = run.start_cbgate(procs, run.free_port(), upstream_port, run.clean_env(), 1)
        pid = procs.pid("cbgate")
        started_rss = rss_kib(pid)
        done = {"json": 0, "sse": 0}
        bad = 0
        i = 0
        began = time.monotonic()
        while sum(done.values()) < args.requests:
            mode = ("json", "sse")[i % 2]
            i += 1
            result = run.run_wrk(target, mode, args.clients, args.stretch)
            done[mode] += result["requests"]
            bad += result["bad"] + result["socket_errors"]
            total = sum(done.values())
            points.append((total, done["json"], done["sse"], rss_kib(pid), run.load_average()))
            print(f"  after {total} requests ({mode}): RSS {points[-1][3] / 1024:.1f} MiB", flush=True)
        seconds = time.monotonic() - began
    finally:
        procs.stop_all()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=run.REPO).stdout.strip()
    # the first checkpoint: past --first requests and after both modes ran, since what only one of them uses
    # (the prompt tokenizer's tables, loaded on a stream's first use) is a one-off step, not growth
    first = next(pt for pt in points if pt[0] >= args.first and pt[1] and pt[2])
    (n1, _, _, rss1, load1), (n2, j2, s2, rss2, load2) = first, points[-1]
    lines = [f"# Gateway memory after {args.first:,} and {args.requests:,} requests, "
             f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC", "",
             f"- command: `python3 bench/memory.py --requests {args.requests} --first {args.first}`",
             f"- cbgate {commit}, one worker, access log on, admission (all limits set, none reached), usage ledger; "
             f"wrk {args.clients} connections, non-streaming and streaming (14 events) in alternating "
             f"{args.stretch:g} s stretches ({j2:,} and {s2:,} in all, {seconds:.0f} s); bad replies {bad}",
             f"- load average at start {load_start}", "",
             "| after | requests | RSS MiB | load |", "|---|---:|---:|---|",
             f"| start (ready, no request) | 0 | {started_rss / 1024:.1f} | {load_start} |",
             f"| first checkpoint | {n1:,} | {rss1 / 1024:.1f} | {load1} |",
             f"| last checkpoint | {n2:,} | {rss2 / 1024:.1f} | {load2} |", "",
             f"RSS at {n2:,} / RSS at {n1:,}: **{rss2 / rss1:.3f}** (target: at most 1.10)", "",
             "Every stretch: " + ", ".join(f"{n:,} {rss / 1024:.0f}" for n, _, _, rss, _ in points) + " (requests, MiB)"]
    if bad:  # a refusal is cheap and small: a run that refused requests does not measure serving them
        lines += ["", f"**Not a measurement of serving: {bad:,} replies were not 200s or were cut.** "
                      "The gateway's log (bench/.run/logs/) says why."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
