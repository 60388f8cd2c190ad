#!/usr/bin/env python3
"""What the HTTP server itself costs a request: the gateway's protocol (`cbgate.http.server_protocol`)
against uvicorn's httptools protocol (with its default proxy-headers middleware, as cbgate ran it before
issue 17), each serving the same minimal ASGI app (read the body, answer 40 bytes of JSON) in a process of
its own under uvloop, driven by wrk with a POST like the chat benchmark's. Reported: req/s, p50, and the
server process's CPU per request (user and kernel, from /proc), interleaved over rounds.

    python3 bench/server_protocol.py [--seconds 5] [--rounds 3] [--clients 1,32] [--out bench/results/server-protocol.md]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402

SERVER = r'''
import sys, uvicorn
from cbgate.http.server_protocol import GatewayProtocol

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = b'{"id":"x","object":"chat.completion","ok":1}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})

which, port = sys.argv[1], int(sys.argv[2])
http, proxy = (GatewayProtocol, False) if which == "gateway" else ("httptools", True)
uvicorn.run(app, host="127.0.0.1", port=port, http=http, proxy_headers=proxy, loop="uvloop",
            log_level="warning", access_log=False, lifespan="off")
'''
WRK_LUA = r'''
wrk.method = "POST"
wrk.body = '{"model":"m","messages":[{"role":"user","content":"hello there"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
'''


def wrk(port: int, clients: int, seconds: float) -> dict:
    script = run.RUN / "server-protocol.lua"
    script.write_text(WRK_LUA)
    out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency", "-s",
                          str(script), f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    requests = int(next(ln for ln in out.splitlines() if "requests in" in ln).split()[0])
    p50 = next(ln for ln in out.splitlines() if ln.strip().startswith("50%")).split()[1]
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    unit = next(u for u in ("us", "ms", "s") if p50.endswith(u))
    return {"requests": requests, "p50_ms": float(p50[:-len(unit)]) * scale[unit]}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clients", default="1,32")
    p.add_argument("--out", default=str(run.BENCH / "results" / "server-protocol.md"))
    args = p.parse_args(argv)
    run.RUN.mkdir(parents=True, exist_ok=True)
    (run.RUN / "server_protocol_app.py").write_text(SERVER)
    procs = run.Processes()
    rows: dict = {}
    try:
        ports = {}
        for which in ("gateway", "uvicorn"):
            ports[which] = run.free_port()
            procs.start(which, [str(run.REPO / ".venv" / "bin" / "python"), str(run.RUN / "server_protocol_app.py"),
                                which, str(ports[which])], env=run.clean_env())
            deadline = time.monotonic() + 30
            while subprocess.run(["curl", "-s", "-o", "/dev/null", "-X", "POST", f"http://127.0.0.1:{ports[which]}/"]
                                 ).returncode != 0:
                if time.monotonic() > deadline:
                    sys.exit(f"{which} did not start:\n{procs.log_tail(which)}")
                time.sleep(0.2)
        for rnd in range(args.rounds):
            for clients in [int(c) for c in args.clients.split(",")]:
                for which in (("gateway", "uvicorn") if rnd % 2 == 0 else ("uvicorn", "gateway")):
                    wrk(ports[which], clients, 1)  # warm
                    pid = procs.pid(which)
                    cpu = run.cpu_seconds(pid)
                    began = time.monotonic()
                    result = wrk(ports[which], clients, args.seconds)
                    result["rps"] = result["requests"] / (time.monotonic() - began)
                    result["cpu_us"] = (run.cpu_seconds(pid) - cpu) * 1e6 / max(1, result["requests"])
                    rows.setdefault((clients, which), []).append(result)
                    print(f"  round {rnd + 1} c={clients:<3} {which:8} {result['rps']:8.0f} req/s  p50 "
                          f"{result['p50_ms']:.3f} ms  cpu/req {result['cpu_us']:.1f} us  load {run.load_average()}",
                          flush=True)
    finally:
        procs.stop_all()
    median = lambda xs: sorted(xs)[(len(xs) - 1) // 2]  # noqa: E731
    lines = [f"# The HTTP server's own cost per request, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"- command: `python3 bench/server_protocol.py --seconds {args.seconds:g} --rounds {args.rounds} "
             f"--clients {args.clients}`",
             "- the same minimal ASGI app (read the body, answer 40 bytes of JSON), one process each, uvloop; "
             "uvicorn's httptools protocol with its default proxy-headers middleware (as cbgate ran before issue 17)",
             f"- medians of {args.rounds} interleaved rounds; CPU is the server process's user and kernel time", "",
             "| clients | server | req/s | p50 ms | CPU µs/request | uvicorn/gateway CPU, per round |",
             "|---:|---|---:|---:|---:|---|"]
    for clients in [int(c) for c in args.clients.split(",")]:
        ours, theirs = rows[(clients, "gateway")], rows[(clients, "uvicorn")]
        per_round = ", ".join(f"{t['cpu_us'] / o['cpu_us']:.2f}" for o, t in zip(ours, theirs))
        for which, results in (("gateway", ours), ("uvicorn", theirs)):
            lines.append(f"| {clients} | {which} | {median([r['rps'] for r in results]):.0f} | "
                         f"{median([r['p50_ms'] for r in results]):.3f} | "
                         f"{median([r['cpu_us'] for r in results]):.1f} | {per_round if which == 'gateway' else ''} |")
    report = "\n".join(lines) + "\n"
    if args.out != "-":
        Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main(sys.argv[1:])
