"""What metering costs a chat request, and how fast the ledger drains, measured in one run.

    .venv/bin/python -m bench.ledger_overhead [--requests 20000] [--postgres postgresql://...]

Per request (on the event loop): a Meter's start, `serving` (the spool's "open" entry) and `finish`
(metrics, the "done" entry), against the same with metrics only and against bare object creation.
Off the request path: the drain (fsync + batched idempotent inserts) in records per second, per store.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from cbgate.core.auth import Principal
from cbgate.core.metering import Metering
from cbgate.protocol.chat_request import parse_chat_request
from cbgate.protocol.chat_response import Usage
from cbgate.providers.base import StreamOutcome
from cbgate.store.db import Store
from cbgate.store.ledger import LedgerWriter

PRINCIPAL = Principal("team-bench", "key-bench", "server")
REQUEST = parse_chat_request({"model": "m1", "stream": True,
                              "messages": [{"role": "user", "content": "how long is a piece of string? " * 8}]})


def per_request(metering: Metering | None, n: int) -> float:
    """Microseconds per request of the metering calls the model service makes (on a running loop)."""
    return asyncio.run(_per_request(metering, n))


async def _per_request(metering: Metering | None, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        outcome = StreamOutcome()
        if metering is not None:
            meter = metering.start(PRINCIPAL, "cloudbase", REQUEST, f"req-{i}-{os.urandom(4).hex()}")
            meter.serving("dep", outcome)
        outcome.usage = Usage(40, 20)
        outcome.mark_token()
        if metering is not None:
            meter.finish(None)
    return (time.perf_counter() - start) / n * 1e6


def drain_rate(store: Store, spool_dir: Path, n: int) -> tuple[float, float]:
    """(per-request µs with the ledger, drained records per second) for one store."""
    writer = LedgerWriter(store, spool_dir)
    cost = per_request(Metering(writer), n)
    start = time.perf_counter()
    assert asyncio.run(writer.flush())
    rate = n / (time.perf_counter() - start)
    asyncio.run(writer.close())
    return cost, rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--postgres", help="a PostgreSQL URL to measure the drain into (a scratch database)")
    args = parser.parse_args()
    n = args.requests
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        per_request(Metering(), 2000)  # warm up
        baseline = per_request(None, n)
        metrics_only = per_request(Metering(), n)
        stores = [("sqlite", str(root / "bench.db"))] + ([("postgresql", args.postgres)] if args.postgres else [])
        print(f"requests: {n}")
        print(f"baseline (no metering)          {baseline:7.2f} us/request")
        print(f"metrics only                    {metrics_only:7.2f} us/request")
        for name, url in stores:
            store = Store(url)
            store.migrate()
            cost, rate = drain_rate(store, root / f"spool-{name}", n)
            print(f"metrics + ledger spool ({name:10s}) {cost:7.2f} us/request; "
                  f"drain {rate:9.0f} records/s (off the request path)")
            store.close()


if __name__ == "__main__":
    main()
