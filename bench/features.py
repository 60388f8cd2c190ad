"""What each per-request feature costs the event loop, in microseconds, measured in one run.

    PYTHONPATH=src .venv/bin/python -m bench.features [--requests 20000] [--out bench/results/features.md]

Each line times the calls one chat request makes for that feature, in a loop on a running event loop, with
the same objects the gateway builds (a real key in a real store, the in-process limiter with every limit
set, the spool on disk). The upstream lines POST the benchmark's fixed completion to nginx (bench/run.py's
fake upstream) one request at a time: the gateway's own pooled HTTP/1.1 client, aiohttp's pooled session
(the client before), and, for scale, a bare asyncio stream that writes the request and reads the known
reply length; the three take turns in five rounds, and each line is its median round. The figures are loop time, not
CPU of background threads (the ledger drain and the access log writer), which are given per record.

Every figure is CPU time (time.thread_time: the loop's own thread; process time for the drain), not wall
time: on a shared, loaded machine wall time counts the moments the thread waited for a core.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from cbgate.core.metrics import Metrics
from cbgate.core.tenants import TenantDirectory
from cbgate.core.auth import authenticate
from cbgate.core.tracing import NO_TRACING
from cbgate.limits.base import EnvLimits, estimate_cost
from cbgate.limits.memory import MemoryLimiter
from cbgate.logs import ACCESS, ACCESS_WRITER, access_line
from cbgate.protocol.chat_request import parse_chat_request
from cbgate.providers.netguard import EgressPolicy
from cbgate.providers.token_estimate import TokenEstimator
from cbgate.providers.upstream_http import Endpoint, Timeouts, UpstreamClient
from cbgate.store.db import Store
from cbgate.store.ledger import LedgerWriter
from cbgate.store.usage import UsageRecord

BENCH = Path(__file__).resolve().parent
REQUEST = parse_chat_request({"model": "bench-json", "max_tokens": 64,
                              "messages": [{"role": "system", "content": "You answer briefly."},
                                           {"role": "user", "content": "Say hello and tell me something short."}]})
ALL_SET = EnvLimits(concurrency=1_000_000, rpm=10**12, tpm=10**15, token_quota=10**18)


def timed(n: int, call) -> float:
    start = time.thread_time()
    for i in range(n):
        call(i)
    return (time.thread_time() - start) / n * 1e6


async def atimed(n: int, call) -> float:
    start = time.thread_time()
    for i in range(n):
        await call(i)
    return (time.thread_time() - start) / n * 1e6


def auth_setup(scratch: Path):
    from cbgate.config import load_settings
    from cbgate.core.admin import Admin
    settings = load_settings(str(scratch / "data"), env={})
    (scratch / "data").mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_url)
    store.migrate()
    admin = Admin(store, settings)
    env_id = admin.create_env()
    _, key = admin.create_key(env_id)
    return TenantDirectory(store, 60.0), f"Bearer {key}", store


async def features(n: int, scratch: Path) -> list[tuple[str, float]]:
    rows = []
    directory, authorization, store = auth_setup(scratch)
    rows.append(("auth (key digest, snapshot lookup)",
                 timed(n, lambda i: authenticate(directory.current(), authorization, "127.0.0.1"))))
    limiter = MemoryLimiter()

    async def admit(i):
        ticket = await limiter.admit("e", "e", ALL_SET, estimate_cost(REQUEST.messages, REQUEST.max_tokens))
        ticket.finish(40)
    rows.append(("admission (in-process, all four limits set)", await atimed(n, admit)))
    estimator = TokenEstimator()
    await estimator.load()
    rows.append(("prompt token estimate (cl100k, for the ledger's open entry)",
                 timed(n, lambda i: estimator.usage_now(REQUEST.messages, []))))
    metrics = Metrics()

    def count(i):
        metrics.started("e", "cloudbase")
        metrics.finished("e", "cloudbase", "bench-json", "OK", 23, 12, 0.004, None)
    rows.append(("metrics (in flight, counters, latency histogram)", timed(n, count)))
    ledger = LedgerWriter(store, scratch / "spool")

    def journal(i):
        record = UsageRecord(f"req-{i}", "e", "k", "cloudbase", "bench-json", "fake", prompt_tokens=23,
                             created_at=time.time())
        ledger.begin(record)
        ledger.finish(record)
    rows.append(("ledger spool (open and done entries: two write()s)", timed(n, journal)))
    start = time.process_time()  # the drain runs in a worker thread: this process's CPU, the loop idle
    await ledger.flush()
    rows.append(("  ledger drain, per record (its thread: fsync, batched insert)",
                 (time.process_time() - start) / n * 1e6))
    rows.append(("tracing off (the span context)", timed(n, lambda i: NO_TRACING.span("x", None).__enter__())))
    loop = asyncio.get_running_loop()
    rows.append(("header timeout (arm and disarm a timer)",
                 timed(n, lambda i: loop.call_later(10.0, print).cancel())))
    rows.append(("request id (12 random bytes, hex)", timed(n, lambda i: os.urandom(12).hex())))
    rows += access_log(n)
    store.close()
    return rows


def access_log(n: int) -> list[tuple[str, float]]:
    handler = logging.StreamHandler(open(os.devnull, "w"))
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers[:], root.level = [handler], logging.INFO
    logging.getLogger(ACCESS).disabled = False
    try:
        def line(i):
            access_line(200, None, "0123456789abcdef01234567", 4.2, method="POST",
                        path="/v1/ai/cloudbase/chat/completions", model="bench-json", prompt_tokens=23,
                        completion_tokens=12, env="env-bench")
        ACCESS_WRITER._wake.set()  # the thread is not woken meanwhile: the loop's share alone is timed
        queued = timed(n, line)
        start = time.thread_time()
        ACCESS_WRITER.flush()
        written = (time.thread_time() - start) / n * 1e6
    finally:
        root.handlers[:], root.level = saved, level
    return [("access log, the loop's share (queue one entry)", queued),
            ("  access log, per line in its thread (record, format, batched write)", written)]


async def upstream(n: int, port: int) -> list[tuple[str, float]]:
    """The gateway's client, aiohttp's pooled session (the client before issue 17) and a bare stream, the
    same POST to nginx one at a time; the three take turns for a few rounds and each line is its median."""
    import aiohttp
    from configs import completion_body, upstream_url, MODEL_JSON, request_body
    url = upstream_url(port, MODEL_JSON) + "/chat/completions"
    body = request_body("fake-upstream", False)
    headers = {"Authorization": "Bearer sk-x", "Content-Type": "application/json"}
    client = UpstreamClient(EgressPolicy())
    await client.start()
    endpoint = Endpoint("bench", url, headers, "sk-x", guarded=False)

    async def pooled(i):
        response, _ = await client.open(endpoint, body, Timeouts())
        await response.read()
        response.release()

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256, limit_per_host=0),
                                    timeout=aiohttp.ClientTimeout(total=None), trust_env=False,
                                    skip_auto_headers=("User-Agent",))
    connect = aiohttp.ClientTimeout(sock_connect=10)

    async def with_aiohttp(i):
        async with asyncio.timeout(60):
            response = await session.post(url, data=body, headers=headers, allow_redirects=False, timeout=connect)
        await response.read()
        response.release()

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    expected = len(completion_body())
    request = (f"POST /json/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sk-x\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    async def bare(i):
        writer.write(request)
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(expected)

    calls = {"upstream POST, the gateway's HTTP/1.1 client, pooled (http1_pool)": pooled,
             "  upstream POST, aiohttp pooled session (the client before)": with_aiohttp,
             "  upstream POST, bare asyncio stream, same connection reused (floor)": bare}
    figures: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        await atimed(200, call)
    for _ in range(5):
        for name, call in calls.items():
            figures[name].append(await atimed(max(n // 20, 50), call))
    await client.close()
    await session.close()
    writer.close()
    return [(name, sorted(values)[len(values) // 2]) for name, values in figures.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--out", default=str(BENCH / "results" / "features.md"), help="file, or -")
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    import run  # noqa: E402  (the fake upstream)
    scratch = Path(tempfile.mkdtemp(prefix="cbgate-bench-features-"))
    procs = run.Processes()
    try:
        port = run.free_port()
        run.start_fake_upstream(procs, port)
        load = run.load_average()
        try:
            import uvloop
            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        rows = runner(features(args.requests, scratch))
        rows += runner(upstream(args.requests, port))
    finally:
        procs.stop_all()
    lines = [f"# Per-request feature costs, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC", "",
             f"- command: `PYTHONPATH=src .venv/bin/python -m bench.features --requests {args.requests}`",
             f"- {os.cpu_count()} cores, load average at start {load}; loop: uvloop as the gateway runs it", "",
             "| feature | CPU us per request |", "|---|---:|"]
    lines += [f"| {name} | {micros:.1f} |" for name, micros in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
