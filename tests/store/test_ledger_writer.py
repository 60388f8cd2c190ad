"""The ledger writer and its spool: batches reach the database, a dead process's spool is replayed once,
and a database outage loses nothing."""
import asyncio
import os
import shutil
import time

import orjson
import pytest

from cbgate.store.db import Store
from cbgate.store.ledger import LedgerWriter
from cbgate.store.usage import UsageRecord, recent_requests
from tests.support.postgres import set_reachable


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "cbgate.db"))
    s.migrate()
    yield s
    s.close()


def record(i: int = 0, env_id: str = "team-a") -> UsageRecord:
    return UsageRecord(os.urandom(12).hex(), env_id, "key-a", "cloudbase", "m1", "dep",
                       prompt_tokens=10 + i, completion_tokens=i, created_at=time.time())


def ids(store, env_id: str = "team-a") -> list[str]:
    return sorted(r.request_id for r in recent_requests(store, env_id, limit=100_000))


def die(writer: LedgerWriter) -> None:
    """What `kill -9` leaves: the spool files as they are, and the lock released by the kernel."""
    os.close(writer.spool.fd)
    os.close(writer.spool.lock_fd)


def test_flush_writes_the_batch_and_rotation_keeps_the_spool_small(store, tmp_path):
    writer = LedgerWriter(store, tmp_path / "spool", rotate_bytes=2000)
    records = [record(i) for i in range(50)]
    writer.begin(records[0])  # one still in flight: carried across rotations, not inserted

    async def go():
        for r in records[1:]:
            writer.begin(r)
            writer.finish(r)
            if r.prompt_tokens % 10 == 0:
                assert await writer.flush()
        assert await writer.flush()
    asyncio.run(go())
    assert ids(store) == sorted(r.request_id for r in records[1:])
    segments = list((tmp_path / "spool").glob("*.jsonl"))
    assert len(segments) == 1 and segments[0].stat().st_size < 4000
    assert records[0].request_id.encode() in segments[0].read_bytes()
    writer.finish(records[0])
    asyncio.run(writer.close())
    assert len(ids(store)) == 50 and list((tmp_path / "spool").iterdir()) == []


def test_under_steady_load_the_spool_still_rotates_and_loses_nothing(store, tmp_path):
    """A busy gateway journals requests while every batch goes in, so its drain never reaches the segment's
    last entry: the segment must still be replaced, or it grows to the cap and every request is refused."""
    spool_dir = tmp_path / "spool"
    writer = LedgerWriter(store, spool_dir, rotate_bytes=4000)
    in_flight = record(999)
    writer.begin(in_flight)
    finished, sizes = [], []

    def serve(n: int) -> None:
        for i in range(n):
            r = record(len(finished))
            writer.begin(r)
            writer.progress(in_flight.request_id, len(finished))
            writer.finish(r)
            finished.append(r)

    async def go():
        for _ in range(30):
            serve(10)
            batch = asyncio.create_task(writer.flush())
            await asyncio.sleep(0)  # the batch is in its thread now, with what was journalled so far
            serve(10)  # requests keep coming meanwhile
            assert await batch and writer.drained < writer.spool.size
            sizes.append(writer.spool.size)
    asyncio.run(go())
    journalled = sum(len(orjson.dumps(r)) for r in finished) * 2  # an open and a done entry each, at least
    assert max(sizes) < journalled / 10  # it was replaced over and over, not grown to hold them all
    assert len(list(spool_dir.glob("*.jsonl"))) == 1
    assert ids(store) == sorted(r.request_id for r in finished[:-10])  # the last ten wait for the next batch

    die(writer)  # a kill -9 now: the segment it leaves bills the rest, and the stream still in flight
    successor = LedgerWriter(store, spool_dir)
    successor.replay_orphans()
    rows = {r.request_id: r for r in recent_requests(store, "team-a", limit=100_000)}
    assert sorted(rows) == sorted(r.request_id for r in finished + [in_flight])
    assert rows[in_flight.request_id].completion_tokens == len(finished) - 1  # its last progress, carried over


def test_a_dead_process_spool_is_replayed_once_without_duplicates(store, tmp_path):
    spool_dir = tmp_path / "spool"
    writer = LedgerWriter(store, spool_dir)
    done = [record(i) for i in range(5)]
    for r in done:
        writer.begin(r)
        writer.finish(r)
    asyncio.run(writer.flush())  # these reached the database ...
    more = [record(i) for i in range(5, 8)]
    for r in more:
        writer.begin(r)
        writer.finish(r)  # ... these only the spool
    in_flight = record(99)
    writer.begin(in_flight)
    die(writer)
    copy = tmp_path / "copy"
    shutil.copytree(spool_dir, copy)

    successor = LedgerWriter(store, spool_dir)
    assert successor.replay_orphans() == 9  # all, again: replaying what is already in is harmless
    assert successor.replay_orphans() == 0
    shutil.copytree(copy, spool_dir, dirs_exist_ok=True)  # the same spool replayed a second time
    successor.replay_orphans()
    rows = {r.request_id: r for r in recent_requests(store, "team-a", limit=100)}
    assert sorted(rows) == sorted(r.request_id for r in done + more + [in_flight])
    assert rows[in_flight.request_id] == in_flight  # as journalled when it began: billed, not lost
    assert sorted(p.name for p in spool_dir.iterdir()) == sorted([f"ledger-{successor.spool.owner}.lock",
                                                                  successor.spool.path.name])


def test_a_live_process_spool_is_left_alone(store, tmp_path):
    first = LedgerWriter(store, tmp_path / "spool")
    first.finish(record())
    second = LedgerWriter(store, tmp_path / "spool")
    assert second.replay_orphans() == 0 and ids(store) == []


def test_a_torn_last_line_is_skipped(store, tmp_path):
    writer = LedgerWriter(store, tmp_path / "spool")
    writer.finish(record())
    os.write(writer.spool.fd, b'{"k":"done","r":{"request_id":"to')  # power lost mid-write
    die(writer)
    assert LedgerWriter(store, tmp_path / "spool").replay_orphans() == 1


def test_database_outage_keeps_records_in_the_spool_until_it_returns(fresh_postgres_url, tmp_path):
    store = Store(fresh_postgres_url)
    store.migrate()
    writer = LedgerWriter(store, tmp_path / "spool")
    before = [record(i) for i in range(3)]
    during = [record(i) for i in range(3, 10)]

    async def go():
        for r in before:
            writer.finish(r)
        assert await writer.flush()
        set_reachable(fresh_postgres_url, False)
        try:
            for r in during:
                writer.begin(r)
                writer.finish(r)
            assert not await writer.flush() and not await writer.flush()
        finally:
            set_reachable(fresh_postgres_url, True)
        assert await writer.flush()
        assert await writer.flush()  # nothing new: nothing written twice
    asyncio.run(go())
    assert ids(store) == sorted(r.request_id for r in before + during)
    store.close()


def test_the_drain_survives_an_unexpected_error_and_keeps_draining(store, tmp_path):
    writer = LedgerWriter(store, tmp_path / "spool", interval=0.01)
    real_flush, failures = writer.flush, []

    async def flush_failing_once():
        if not failures:
            failures.append(1)
            raise RuntimeError("a bug in the drain")  # not the spool's disk, not the database
        return await real_flush()

    writer.flush = flush_failing_once
    r = record(1)
    writer.begin(r)
    writer.finish(r)

    async def go():
        task = asyncio.create_task(writer.run())
        deadline = time.monotonic() + 30  # a ceiling for a stuck test, not a promise about speed
        while not ids(store) and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.01)
        assert not task.done(), "the drain task ended"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(go())
    assert failures and ids(store) == [r.request_id]
    asyncio.run(writer.close())


def test_past_the_records_kept_in_memory_the_batch_is_read_back_from_the_spool(store, tmp_path, monkeypatch):
    monkeypatch.setattr("cbgate.store.ledger.MAX_KEPT", 5)
    writer = LedgerWriter(store, tmp_path / "spool")
    first, then = [record(i) for i in range(12)], [record(i) for i in range(12, 15)]

    async def go():
        for r in first:
            writer.begin(r)
            writer.finish(r)
        assert writer.kept is None  # too many to keep: the spool has them
        assert await writer.flush()
        assert ids(store) == sorted(r.request_id for r in first)
        for r in then:
            writer.begin(r)
            writer.finish(r)
        assert writer.kept == then  # kept again after the batch that read the spool back
        assert await writer.flush()
    asyncio.run(go())
    assert ids(store) == sorted(r.request_id for r in first + then)
