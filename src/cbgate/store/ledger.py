"""The usage ledger writer: records are journalled to the local spool at once (one write() each, no
I/O wait on the request path) and drained into the database in batches by a background task.

Nothing is lost: a record is in the spool file before the request's task ends, the spool is fsync'd
before each batch, and the drain offset only moves once the database has the batch. A record the spool
could not take (a full or unwritable disk) is kept in memory and goes straight to the database with the
next batch. Nothing is counted twice: inserts skip request ids already in the ledger, so replaying a
spool is harmless.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from cbgate.store.spool import DONE, OPEN, PROGRESS, Spool, SpoolUnwritable, replay_records
from cbgate.store.usage import UsageRecord, insert_records

log = logging.getLogger("cbgate.ledger")

READ_LIMIT = 4 * 1024 * 1024  # bytes of spool per database round
INSERT_BATCH = 1000
MAX_UNJOURNALED = 100_000  # records held in memory while the spool cannot take them
MAX_KEPT = 20_000  # journalled records also kept in memory for the next batch; past this, read back instead


class LedgerWriter:
    def __init__(self, store, spool_dir: Path, *, interval: float = 0.5, batch_size: int = 200,
                 rotate_bytes: int = 4 * 1024 * 1024, spool_max_bytes: int = 256 * 1024 * 1024,
                 orphan_scan_interval: float = 30.0):
        self.store = store
        self.spool = Spool(spool_dir, spool_max_bytes)
        self.interval = interval
        self.batch_size = batch_size
        # a drained segment is replaced once it is this big (well under the cap, or the cap would fill)
        self.rotate_bytes = min(rotate_bytes, spool_max_bytes // 4)
        self.orphan_scan_interval = orphan_scan_interval
        self.open: dict[str, UsageRecord] = {}  # request id -> its open entry, carried over on rotation
        self.unjournaled: list[UsageRecord] = []  # finished records the spool could not take
        # The done records journalled since the last batch's end, as they were journalled: the drain inserts
        # these instead of reading the spool back (parsing its lines cost the drain thread, which shares the
        # GIL with the event loop, about 10 us a record). None: read them back from the spool (after a
        # failed batch, or past MAX_KEPT while the database is away).
        self.kept: list[UsageRecord] | None = []
        self.drained = 0  # offset in the current segment up to which the database has every record
        self.pending = 0  # records journalled since the last flush started
        self.db_ok = True
        self.spool_ok = True  # the last entry landed; False while the spool's disk refuses
        self.durable = True  # False while the spool's directory is gone and no new segment could be made there
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()

    # The request path: one write() each, never an await.
    def begin(self, record: UsageRecord) -> None:
        """A deployment starts serving: if this process dies now, the request is still billed.
        Raises SpoolUnwritable when that cannot be promised (the caller chooses to refuse or to serve)."""
        if not self.durable:
            raise SpoolUnwritable(2, "the ledger spool's directory is gone; a restart would not find this record")
        self._journal(OPEN, record)
        self.open[record.request_id] = record

    def progress(self, request_id: str, completion_tokens: int) -> None:
        """A stream's tokens so far, so a `kill -9` bills what went out; best effort (the open entry stands)."""
        record = self.open.get(request_id)
        if record is None:
            return
        record.completion_tokens = completion_tokens  # carried over on rotation, too
        try:
            self._journal(PROGRESS, {"request_id": request_id, "completion_tokens": completion_tokens})
        except SpoolUnwritable:
            pass  # said once in _journal; the open entry and the done record still bill the request

    def finish(self, record: UsageRecord) -> None:
        self.open.pop(record.request_id, None)
        try:
            self._journal(DONE, record)
        except SpoolUnwritable:
            self._hold(record)
        else:
            if self.kept is not None:
                self.kept.append(record)
                if len(self.kept) > MAX_KEPT:
                    self.kept = None
        self.pending += 1
        if self.pending >= self.batch_size or not self.spool_ok:
            self._wake.set()

    def _hold(self, record: UsageRecord) -> None:
        if len(self.unjournaled) >= MAX_UNJOURNALED:
            log.error("ledger spool unwritable and %d records held in memory; record %s is lost",
                      MAX_UNJOURNALED, record.request_id)
            return
        self.unjournaled.append(record)

    def _journal(self, kind: str, record) -> None:
        try:
            self.spool.append(kind, record)
        except SpoolUnwritable as exc:
            if self.spool_ok:
                log.error("the ledger spool cannot take records: %s", exc)
            self.spool_ok = False
            raise
        if not self.spool_ok:
            log.warning("the ledger spool takes records again")
            self.spool_ok = True

    # The drain.
    async def flush(self) -> bool:
        """Move everything journalled so far into the database; False if the database did not answer."""
        async with self._flushing:
            self.pending = 0
            start, end = self.drained, self.spool.size
            held, self.unjournaled = self.unjournaled, []
            kept, self.kept = self.kept, []  # with `end`: the done records up to it, and none after
            if start < end or held:
                try:
                    await asyncio.to_thread(self._drain, start, end, held, kept)
                except OSError as exc:  # the spool's disk, not the database: say which
                    self.unjournaled = held + self.unjournaled
                    self.kept = None  # the next batch reads everything since `drained` back
                    log.error("could not read the ledger spool back: %s", exc)
                    return False
                except Exception as exc:
                    self.unjournaled = held + self.unjournaled
                    self.kept = None
                    if self.db_ok:
                        log.warning("ledger database unreachable, records wait in the spool: %s", exc)
                    self.db_ok = False
                    return False
                if not self.db_ok:
                    log.warning("ledger database reachable again; the spool is drained")
                self.db_ok = True
                self.drained = end
            if self.durable and self.spool.detached():  # refuse new requests now; move once drained
                log.error("the ledger spool's directory was unmounted or replaced; refusing new requests "
                          "until a segment can be made there")
                self.durable = False
            self._maybe_rotate()
            return True

    def _maybe_rotate(self) -> None:
        """The segment is replaced when its drained part grew big, when its disk refused an entry (the new
        segment may fit where the old did not), or when its directory was unmounted or replaced. What was
        journalled while the batch went in moves to the new segment: under steady load there always is some
        (and the segment would grow to the cap, and refuse every request)."""
        detached = self.spool.detached()
        undrained = self.spool.size - self.drained
        if not ((self.drained > self.rotate_bytes and undrained < self.drained) or not self.spool_ok or detached):
            return
        try:
            self.drained = self.spool.rotate(list(self.open.values()), self.drained)
        except SpoolUnwritable as exc:
            if self.durable or not detached:
                log.error("could not start a new ledger spool segment: %s", exc)
            self.durable = self.durable and not detached
            return
        if not self.durable:
            log.warning("the ledger spool has a directory again")
        self.durable = True

    def _drain(self, start: int, end: int, held: list[UsageRecord], kept: list[UsageRecord] | None) -> None:
        """Insert the done records journalled between `start` and `end` (`kept`, or read back from the
        spool when None), and `held`, those the spool could not take."""
        if start < end:
            self.spool.sync()
        if kept is not None:
            self._insert(kept)
        while kept is None and start < end:
            entries, start = self.spool.read(start, end, READ_LIMIT)
            records = [UsageRecord.from_dict(e["r"]) for e in entries if e.get("k") == DONE]
            self._insert(records)
        self._insert(held)

    def _insert(self, records: list[UsageRecord]) -> None:
        for i in range(0, len(records), INSERT_BATCH):
            insert_records(self.store, records[i:i + INSERT_BATCH])

    def replay_orphans(self) -> int:
        """Replay the spools of processes that died (this one's previous run included); runs in a thread."""
        replayed = 0
        for fd, owner, segments in self.spool.orphans():
            ok = False
            try:
                records = [UsageRecord.from_dict(r) for r in replay_records(segments)]
                self._insert(records)
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
            except Exception:  # anything else must not end the drain silently: the spool would fill
                log.exception("the ledger drain failed; it tries again")
                ok = False
            wait = self.interval if ok else min(wait * 2, 5.0)
            if ok and time.monotonic() >= next_scan:
                next_scan = time.monotonic() + self.orphan_scan_interval
                try:
                    await asyncio.to_thread(self.replay_orphans)
                except OSError as exc:
                    log.warning("could not scan the ledger spool directory: %s", exc)

    async def close(self) -> None:
        """The last flush at shutdown; what the database cannot take stays in the spool for the next start
        (records that never reached the spool are said to be lost: nothing else can keep them)."""
        ok = await self.flush()
        if not ok:
            await asyncio.sleep(self.interval)
            ok = await self.flush()
        if self.unjournaled:
            log.error("%d ledger records the spool could not take are lost at shutdown", len(self.unjournaled))
        self.spool.close(drained=ok and not self.open and self.drained == self.spool.size)
