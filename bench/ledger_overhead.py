"""What metering costs a chat request, and how fast the ledger drains, measured in one run.

    .venv/bin/python -m bench.ledger_overhead [--requests 20000] [--postgres postgresql://...] [--out FILE]

Per request (on the event loop): a Meter's start, `serving` (the spool's "open" entry) and `finish`
(metrics, the "done" entry), against the same with metrics only and against bare object creation.
Off the request path: the drain (fsync + batched idempotent inserts) in records per second, per store,
with the event loop idle and beside a busy one (a thread running Python all the time: the drain's thread
must take the GIL back from it after each wait in the database), for today's inserts (on SQLite, many rows
a statement; on PostgreSQL, psycopg's pipelined executemany, so the same as the other column) and for a
statement a row (executemany, SQLite's way before), in turns.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from cbgate.core.auth import Principal
from cbgate.core.metering import Metering
from cbgate.protocol.chat_request import parse_chat_request
from cbgate.protocol.chat_response import Usage
from cbgate.providers.base import StreamOutcome
from cbgate.store import ledger
from cbgate.store.db import Store
from cbgate.store.ledger import LedgerWriter
from cbgate.store.usage import _insert_sql, insert_records

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
            meter.serving("dep")
            meter.outcome = outcome
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


def a_statement_a_row(store: Store, records) -> None:
    """The drain's inserts before many rows went in a statement: executemany of a one-row INSERT."""
    rows = list({r.request_id: r.values() for r in records}.values())
    with store.engine.begin() as conn:
        conn.exec_driver_sql(_insert_sql(store.is_sqlite, 1), rows)


@contextmanager
def busy_loop(on: bool):
    """A thread that runs Python without a pause, as the event loop does at full load."""
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            sum(range(64))
    thread = threading.Thread(target=spin, daemon=True)
    if on:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if on:
            thread.join()


def drain_beside(store: Store, spool_dir: Path, n: int, busy: bool, insert) -> float:
    """Records per second the drain moves from the spool into `store`, with `insert` as its insert."""
    writer = LedgerWriter(store, spool_dir)
    per_request(Metering(writer), n)
    ledger.insert_records = insert
    try:
        with busy_loop(busy):
            start = time.perf_counter()
            assert asyncio.run(writer.flush())
            rate = n / (time.perf_counter() - start)
    finally:
        ledger.insert_records = insert_records
    asyncio.run(writer.close())
    return rate


def busy_table(stores: list[tuple[str, str]], root: Path, n: int, rounds: int = 3) -> list[str]:
    lines = ["| store | event loop | today's inserts (records/s) | a statement a row | ratio |",
             "|---|---|---:|---:|---:|"]
    for name, url in stores:
        for busy in (False, True):
            count = n if not busy else min(n, 2000)  # a statement a row crawls beside a busy loop
            rates: dict[str, list[float]] = {"head": [], "row": []}
            for r in range(rounds):
                for label, insert in (("head", insert_records), ("row", a_statement_a_row)):
                    store = Store(url)
                    store.migrate()
                    rates[label].append(drain_beside(store, root / f"spool-{name}-{busy}-{label}-{r}", count, busy,
                                                     insert))
                    store.close()
            head, row = (sorted(v)[len(v) // 2] for v in (rates["head"], rates["row"]))
            lines.append(f"| {name} | {'busy' if busy else 'idle'} | {head:,.0f} | {row:,.0f} | {head / row:.1f}x |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--postgres", help="a PostgreSQL URL to measure the drain into (a scratch database)")
    parser.add_argument("--out", help="also write the drain's table, beside an idle and a busy loop, here")
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
        table = busy_table(stores, root, n)
    if args.out:
        options = (f" --requests {n}" if n != 20000 else "") + (" --postgres URL" if args.postgres else "")
        Path(args.out).write_text("\n".join([
            f"# The ledger drain beside an idle and a busy event loop, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC",
            "", f"- command: `PYTHONPATH=src .venv/bin/python -m bench.ledger_overhead{options} --out {args.out}`",
            f"- {n:,} records journalled, then one flush (fsync, inserts); beside a busy loop, {min(n, 2000):,}; "
            f"median of 3 rounds, the two ways in turns; load average at start {os.getloadavg()[0]:.2f}",
            "- busy: a thread runs Python without a pause, as the event loop does at full load; the drain's thread "
            "must take the GIL back from it after each wait in the database", "", *table, ""]))


if __name__ == "__main__":
    main()
