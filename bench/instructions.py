#!/usr/bin/env python3
"""Instructions per request, counted by valgrind's callgrind: a measure of the gateway's CPU cost that a
loaded, shared machine does not disturb (wall time and req/s do; instruction counts repeat within ~1%).

    python3 bench/instructions.py [--base d05b33b] [--requests 1000] [--modes json,sse] [--out FILE]

Each gateway (today's checkout, and `--base` commits from bench/baseline.py's worktree and venv) runs
`cbgate serve` (one worker, the same catalog, key, limits and access log as bench/run.py) under
`valgrind --tool=callgrind` in front of run.py's nginx fake. After a warm-up, the counters are zeroed
(`callgrind_control -z`), N requests are sent one after another on one kept-alive connection, and the
counters dumped (`-d`): the process's instructions (every thread: the event loop, the ledger drain, the
access log writer) divided by N. Non-streaming and streaming (14 events) chat completions are counted
separately; `--modes` adds the Responses and Messages streams of bench/surfaces.py (the same stream).
Under valgrind the gateway runs some 50 times slower, so its timed background work (snapshot polling, the
drain's 0.5 s tick) is spread over fewer requests than at full speed and counts a little more per request.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline  # noqa: E402
import configs  # noqa: E402
import run  # noqa: E402
import surfaces  # noqa: E402


def real_python(python: Path) -> list[str]:
    """argv for a venv's python that valgrind runs itself (a shim script would exec out of its reach)."""
    return [str(python), "-m", "cbgate"]


def start(procs: run.Processes, name: str, upstream_port: int, env: dict, base: baseline.Baseline | None):
    port = run.free_port()
    data_dir = run.RUN / f"cg-{name}"
    import shutil
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    (data_dir / "cbgate.toml").write_text(configs.cbgate_toml(upstream_port))
    how = {"cli": base.cli(), "env": base.env(dict(os.environ))} if base else {}
    env_id = run.cbgate_cli(data_dir, "env", "create", "bench", **how)
    key = run.cbgate_cli(data_dir, "key", "create", "--env", env_id, **how)
    run.switch_on_admission(data_dir, env_id, **how)
    cli = base.cli() if base else real_python(run.REPO / ".venv" / "bin" / "python")
    out = run.RUN / f"callgrind.{name}.out"
    for old in run.RUN.glob(f"callgrind.{name}.out*"):
        old.unlink()
    proc = procs.start(name, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cli, "serve",
                              "--data-dir", str(data_dir), "--port", str(port), "--workers", "1"],
                       env=base.env(env) if base else env)
    run.wait_ready(procs, name, f"http://127.0.0.1:{port}/healthz", 600)
    return port, key, proc.pid, out


MODES = {"json": "non-streaming", "sse": "streaming (14 events)", "responses": "Responses stream",
         "messages": "Messages stream"}


def request_for(mode: str) -> tuple[str, bytes, bytes]:
    """(path, body, what a whole reply holds) for a mode: chat completions, or a surface of bench/surfaces.py."""
    if mode in ("json", "sse"):
        body = configs.request_body(configs.MODEL_JSON if mode == "json" else configs.MODEL_SSE, stream=mode == "sse")
        return "/v1/ai/cloudbase/chat/completions", body, b"data: [DONE]" if mode == "sse" else b'"usage"'
    surface = next(s for s in surfaces.SURFACES if s.name == mode)
    return "/v1/ai/cloudbase" + surface.path, json.dumps(surface.body).encode(), surface.must_contain.encode()


def send(port: int, key: str, mode: str, n: int) -> None:
    path, body, want = request_for(mode)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(n):
        conn.request("POST", path, body, headers)
        reply = conn.getresponse()
        data = reply.read()
        if reply.status != 200 or want not in data:
            sys.exit(f"{mode}: {reply.status} {data[:300]!r}")
    conn.close()


def dumped(pid: int, out: Path) -> int:
    """Dump callgrind's counters now and return the instructions since they were last zeroed."""
    before = set(out.parent.glob(out.name + ".*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for path in set(out.parent.glob(out.name + ".*")) - before:
            found = re.search(r"^summary: (\d+)", path.read_text(errors="replace"), re.M)
            if found:
                return int(found.group(1))
        time.sleep(0.5)
    sys.exit(f"no callgrind dump in {out.parent}")


def zero(pid: int) -> float:
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
    return time.monotonic()


def idle_rate(pid: int, out: Path, seconds: float) -> float:
    """Instructions per second the gateway spends with no request at all (its timers and threads)."""
    started = zero(pid)
    time.sleep(seconds)
    return dumped(pid, out) / (time.monotonic() - started)


def settle(pid: int, out: Path, quiet: float = 10e6, longest: float = 300) -> None:
    """Wait until the gateway is quiet: work its first requests started in threads (loading the tokenizer's
    tables takes minutes under valgrind) must not be counted as the requests'."""
    deadline = time.monotonic() + longest
    while idle_rate(pid, out, 3) > quiet and time.monotonic() < deadline:
        pass


def counted(pid: int, out: Path, port: int, key: str, mode: str, n: int, warmup: int, _: float) -> tuple[float, float]:
    """(instructions per request, seconds the N requests took)."""
    send(port, key, mode, warmup)
    started = zero(pid)
    send(port, key, mode, n)
    total = dumped(pid, out)
    return total / n, time.monotonic() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="d05b33b", help="older commits to count too, comma-separated ('' for none)")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--idle", type=float, default=20, help="seconds counted with no requests (the idle rate)")
    p.add_argument("--modes", default="json,sse", help=f"comma-separated, of {', '.join(MODES)} (default json,sse)")
    p.add_argument("--out", default=str(run.BENCH / "results" / "instructions.md"))
    args = p.parse_args()
    modes = args.modes.split(",")
    if unknown := set(modes) - set(MODES):
        p.error(f"unknown modes: {', '.join(sorted(unknown))}")
    bases = [b for b in args.base.split(",") if b]
    procs = run.Processes()
    env = run.clean_env()
    rows = []
    load = run.load_average()
    try:
        upstream_port = run.free_port()
        run.start_fake_upstream(procs, upstream_port)
        for name, base in [("head", None), *[(b, baseline.prepare(b)) for b in bases]]:
            port, key, pid, out = start(procs, name, upstream_port, env, base)
            for mode in modes:  # first uses load what they need (the tokenizer's tables...)
                send(port, key, mode, args.warmup)
            settle(pid, out)
            first = idle_rate(pid, out, args.idle / 2)
            figures = {mode: counted(pid, out, port, key, mode, args.requests, args.warmup, 0.0)
                       for mode in modes}
            idle = min(first, idle_rate(pid, out, args.idle / 2))
            figures = {mode: (total, total - idle * elapsed / args.requests)
                       for mode, (total, elapsed) in figures.items()}
            rows.append((name, figures, idle))
            print(f"  {name:8} idle {idle / 1e6:.1f} M/s; per request (all, less idle): " + "; ".join(
                f"{mode} {figures[mode][0] / 1e6:.3f}, {figures[mode][1] / 1e6:.3f} M" for mode in modes), flush=True)
            procs.stop_all()
            procs.running = []
            run.start_fake_upstream(procs, upstream_port)
    finally:
        procs.stop_all()
    head_commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=run.REPO).stdout.strip()
    lines = [f"# Instructions per request (callgrind), {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC", "",
             f"- command: `python3 bench/instructions.py --base {args.base} --requests {args.requests}"
             + (f" --modes {args.modes}`" if args.modes != "json,sse" else "`"),
             f"- head: {head_commit}; one worker under valgrind --tool=callgrind, access log on (INFO, to a file), "
             "admission (all four limits set, none reached), usage ledger; the nginx fake of bench/run.py",
             f"- {args.requests} requests per mode, one at a time on one kept-alive connection, after "
             f"{args.warmup} unmeasured; every thread of the process counted; load average at start {load}",
             "", "Per request: every instruction the process ran while the N requests were served, and the same less "
             "what it runs idle over as long (its idle rate, counted with no requests for a while beforehand).", "",
             "| gateway | idle, M instr/s | " + " | ".join(f"{MODES[m]}, M instr/request | less idle" for m in modes)
             + " |", "|---|---:|" + "---:|---:|" * len(modes)]
    lines += [f"| {name} | {idle / 1e6:.1f} | " + " | ".join(f"{f[m][0] / 1e6:.3f} | {f[m][1] / 1e6:.3f}" for m in modes)
              + " |" for name, f, idle in rows]
    if len(rows) > 1:
        head = rows[0][1]
        lines += ["", "| base | " + " | ".join(f"head / base, {MODES[m]} (all, less idle)" for m in modes) + " |",
                  "|---|" + "---:|" * len(modes)]
        lines += [f"| {name} | " + " | ".join(f"{head[m][0] / f[m][0]:.2f}, {head[m][1] / f[m][1]:.2f}" for m in modes)
                  + " |" for name, f, _ in rows[1:]]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
