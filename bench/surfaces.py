#!/usr/bin/env python3
"""Streams/s per surface: the same stream from the same nginx fake upstream (run.py's), asked for as chat
completions, as Anthropic Messages and as a Responses stream, through one `cbgate serve`, in one run.
Surfaces take turns for `--rounds` rounds so that drifting machine load hits them alike; the report
gives each one's median and its ratio to chat (target: Messages and Responses >= 0.85x chat), by streams/s
and by the gateway's CPU a stream.

    python3 bench/surfaces.py                      # ~1 minute; writes bench/results/surfaces-latest.md
    python3 bench/surfaces.py --seconds 3 --rounds 2 --out -
"""
from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import configs  # noqa: E402  (bench/ is not a package; its runners are scripts)
import run  # noqa: E402

PROMPT = [{"role": "user", "content": "Say hello and tell me something short."}]


@dataclass(frozen=True)
class Surface:
    name: str
    path: str  # under /v1/ai/cloudbase
    body: dict
    must_contain: str  # what a whole, successful stream of this surface ends with


SURFACES = (
    Surface("chat", "/chat/completions",
            {"model": configs.MODEL_SSE, "max_tokens": 64, "messages": PROMPT, "stream": True,
             "stream_options": {"include_usage": True}}, "data: [DONE]"),
    Surface("messages", "/v1/messages",
            {"model": configs.MODEL_SSE, "max_tokens": 64, "messages": PROMPT, "stream": True}, "message_stop"),
    # store false: a stored response adds a database write per answer, which is storage, not the edge
    Surface("responses", "/v1/responses",
            {"model": configs.MODEL_SSE, "max_output_tokens": 64, "input": PROMPT[0]["content"], "stream": True,
             "store": False}, "response.completed"),
)


def body_file(surface: Surface) -> Path:
    path = run.RUN / f"body-surface-{surface.name}.json"
    path.write_bytes(json.dumps(surface.body).encode())
    return path


def check_once(base: str, key: str, surface: Surface) -> None:
    req = urllib.request.Request(base + surface.path, data=body_file(surface).read_bytes(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read().decode()
    if surface.must_contain not in body:
        sys.exit(f"{surface.name}: unexpected stream: {body[:500]!r}")


def wrk(base: str, key: str, surface: Surface, clients: int, seconds: float) -> dict:
    argv = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", str(run.BENCH / "wrk" / "chat.lua"), base + surface.path,
            "--", str(body_file(surface)), key, surface.must_contain]
    out = run.subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if line is None:
        sys.exit(f"wrk gave no result for {surface.name}:\n{out.stdout}\n{out.stderr}")
    result = json.loads(line.removeprefix("WRK_RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def measure(base: str, key: str, args, pid: int) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {s.name: [] for s in SURFACES}
    for round_no in range(args.rounds):
        for surface in SURFACES:
            if args.warmup:
                wrk(base, key, surface, args.clients, args.warmup)
            cpu = run.cpu_seconds(pid)
            r = wrk(base, key, surface, args.clients, args.seconds)
            # the gateway's CPU a stream (every thread, user and kernel): steadier than streams/s on a busy machine
            r["cpu_us"] = (run.cpu_seconds(pid) - cpu) * 1e6 / max(1, r["requests"])
            r["load"] = run.load_average()
            results[surface.name].append(r)
            print(f"  round {round_no + 1} {surface.name:9} {r['rps']:7.0f} streams/s  p50 {r['p50_us'] / 1000:6.2f} ms"
                  f"  p99 {r['p99_us'] / 1000:6.2f} ms  cpu {r['cpu_us']:4.0f} us  bad {r['bad'] + r['socket_errors']}  load {r['load']}",
                  flush=True)
    return results


def report(results: dict[str, list[dict]], args, argv: list[str], commit: str) -> str:
    chat = statistics.median(r["rps"] for r in results["chat"])
    chat_cpu = statistics.median(r["cpu_us"] for r in results["chat"])
    lines = [f"## Streams/s per surface, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "",
             f"- command: `{' '.join(['python3', 'bench/surfaces.py', *argv])}`",
             f"- cbgate {commit}, 1 worker, ledger and admission on; fake upstream: nginx (run.py's), "
             f"{configs.STREAM_EVENTS} chunks per stream; wrk 1 thread, {args.clients} connections, "
             f"{args.seconds:g} s per cell after {args.warmup:g} s warm-up, {args.rounds} rounds, surfaces in turn",
             "- every stream is checked whole (status 200 and its last event); Responses with `store: false`",
             "- CPU a stream: the gateway process's user and kernel time over the cell (every thread) over its streams; "
             "x chat by CPU is chat's CPU a stream over the surface's (moves far less with the machine's load than "
             "streams/s)", "",
             "| surface | streams/s (median) | each round | x chat | CPU µs a stream (median) | x chat by CPU | "
             "p50 ms | p99 ms | events/stream | bad |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for surface in SURFACES:
        rs = results[surface.name]
        rps = statistics.median(r["rps"] for r in rs)
        cpu = statistics.median(r["cpu_us"] for r in rs)
        events = sum(r["events"] for r in rs) / max(1, sum(r["replies"] for r in rs))
        bad = sum(r["bad"] + r["socket_errors"] for r in rs)
        rounds = ", ".join(f"{r['rps']:.0f}" for r in rs)
        lines.append(f"| {surface.name} | {rps:.0f} | {rounds} | {rps / chat:.2f} | {cpu:.0f} | {chat_cpu / cpu:.2f} | "
                     f"{statistics.median(r['p50_us'] for r in rs) / 1000:.2f} | "
                     f"{statistics.median(r['p99_us'] for r in rs) / 1000:.2f} | {events:.1f} | {bad} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5, help="measured seconds per cell (default 5)")
    p.add_argument("--warmup", type=float, default=1, help="unmeasured seconds before each cell (default 1)")
    p.add_argument("--clients", type=int, default=32, help="concurrent connections (default 32)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, each surface once per round (default 3)")
    p.add_argument("--out", default=str(run.BENCH / "results" / "surfaces-latest.md"), help="the report ('-': none)")
    args = p.parse_args(argv)
    run.preflight(argparse.Namespace(targets=["cbgate"]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))  # still stop the servers
    procs = run.Processes()
    try:
        upstream_port = run.free_port()
        run.start_fake_upstream(procs, upstream_port)
        target = run.start_cbgate(procs, run.free_port(), upstream_port, run.clean_env(), 1)
        base = target.urls["sse"].removesuffix("/chat/completions")
        for surface in SURFACES:
            check_once(base, target.key, surface)
        results = measure(base, target.key, args, target.pid)
    finally:
        procs.stop_all()
    commit = run.subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=run.REPO).stdout.strip()
    text = report(results, args, argv, commit)
    print("\n" + text)
    if args.out != "-":
        Path(args.out).write_text(text)
        print(f"written to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
