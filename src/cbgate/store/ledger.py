"""The usage ledger writer: records are journalled to the local spool at once (one write() each, no
I/O wait on the request path) and drained into the database in batches by a background task.

Nothing is lost: a record is in the spool file before the request's task ends, the spool is fsync'd
before each batch, and the drain offset only moves once the database has the batch. Nothing is counted
twice: inserts skip request ids already in the ledger, so replaying a spool is harmless.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from cbgate.store.spool import DONE, OPEN, Spool, read_span, replay_records
from cbgate.store.usage import UsageRecord, insert_records

log = logging.getLogger("cbgate.ledger")

READ_LIMIT = 4 * 1024 * 1024  # bytes of spool per database round
INSERT_BATCH = 1000


class LedgerWriter:
    def __init__(self, store, spool_dir: Path, *, interval: float = 0.5, batch_size: int = 200,
                 rotate_bytes: int = 4 * 1024 * 1024, orphan_scan_interval: float = 30.0):
        self.store = store
        self.spool = Spool(spool_dir)
        self.interval = interval
        self.batch_size = batch_size
        self.rotate_bytes = rotate_bytes
        self.orphan_scan_interval = orphan_scan_interval
        self.open: dict[str, UsageRecord] = {}  # request id -> its open entry, carried over on rotation
        self.drained = 0  # offset in the current segment up to which the database has every record
        self.pending = 0  # records journalled since the last flush started
        self.written = 0  # records handed to the database (a replayed duplicate counts, and is skipped)
        self.db_ok = True
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()

    # The request path: one write() each, never an await.
    def begin(self, record: UsageRecord) -> None:
        """A deployment starts serving: if this process dies now, the request is still billed."""
        self.open[record.request_id] = record
        self._journal(OPEN, record)

    def finish(self, record: UsageRecord) -> None:
        self.open.pop(record.request_id, None)
        self._journal(DONE, record)
        self.pending += 1
        if self.pending >= self.batch_size:
            self._wake.set()

    def _journal(self, kind: str, record: UsageRecord) -> None:
        try:
            self.spool.append(kind, record)
        except OSError as exc:  # a full disk must not fail the request; say so loudly
            log.error("could not write the ledger spool (%s); record %s is lost", exc, record.request_id)

    # The drain.
    async def flush(self) -> bool:
        """Move everything journalled so far into the database; False if the database did not answer."""
        async with self._flushing:
            self.pending = 0
            path, start, end = self.spool.path, self.drained, self.spool.size
            if start < end:
                try:
                    await asyncio.to_thread(self._drain, path, start, end)
                except Exception as exc:
                    if self.db_ok:
                        log.warning("ledger database unreachable, records wait in the spool: %s", exc)
                    self.db_ok = False
                    return False
                if not self.db_ok:
                    log.warning("ledger database reachable again; the spool is drained")
                self.db_ok = True
                self.drained = end
            if self.drained == self.spool.size and self.spool.size > self.rotate_bytes:
                self.spool.rotate(list(self.open.values()))
                self.drained = self.spool.size  # the carried entries are open ones, not records
            return True

    def _drain(self, path: Path, start: int, end: int) -> None:
        self.spool.sync()
        while start < end:
            entries, start = read_span(path, start, end, READ_LIMIT)
            records = [UsageRecord.from_dict(e["r"]) for e in entries if e.get("k") == DONE]
            for i in range(0, len(records), INSERT_BATCH):
                insert_records(self.store, records[i:i + INSERT_BATCH])
            self.written += len(records)

    def replay_orphans(self) -> int:
        """Replay the spools of processes that died (this one's previous run included); runs in a thread."""
        replayed = 0
        for fd, owner, segments in self.spool.orphans():
            ok = False
            try:
                records = [UsageRecord.from_dict(r) for r in replay_records(segments)]
                for i in range(0, len(records), INSERT_BATCH):
                    insert_records(self.store, records[i:i + INSERT_BATCH])
                replayed += len(records)
                ok = True
            except Exception as exc:
                log.warning("could not replay the ledger spool of %s yet: %s", owner, exc)
            finally:
                self.spool.release(fd, owner, replayed=ok)
        if replayed:
            log.info("replayed %d ledger records from spools of stopped processes", replayed)
        return replayed

    async def run(self) -> None:
        """Flush every `interval` (sooner when a batch is full); back off while the database is away."""
        wait = self.interval
        next_scan = time.monotonic() + self.orphan_scan_interval
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                ok = await asyncio.shield(self.flush())  # cancelled at shutdown, a batch still completes first
            except OSError as exc:  # the spool's disk; the records stay where they are, so try again later
                log.error("could not rotate or sync the ledger spool: %s", exc)
                ok = False
            wait = self.interval if ok else min(wait * 2, 5.0)
            if ok and time.monotonic() >= next_scan:
                next_scan = time.monotonic() + self.orphan_scan_interval
                try:
                    await asyncio.to_thread(self.replay_orphans)
                except OSError as exc:
                    log.warning("could not scan the ledger spool directory: %s", exc)

    async def close(self) -> None:
        """The last flush at shutdown; what the database cannot take stays in the spool for the next start."""
        ok = await self.flush()
        if not ok:
            await asyncio.sleep(self.interval)
            ok = await self.flush()
        self.spool.close(drained=ok and not self.open and self.drained == self.spool.size)
