"""The spool never lies about what it holds: short writes are cut back and refused, the cap holds, the
reader never waits for bytes that are not there, and a torn tail is cut before a replay."""
from __future__ import annotations

import errno
import os
import time

import orjson
import pytest

from cbgate.store import spool as spool_module
from cbgate.store.spool import DONE, OPEN, PROGRESS, Spool, SpoolUnwritable, parse_lines, replay_records
from cbgate.store.usage import UsageRecord
from tests.faults.tmpfs import fill, small_tmpfs


def record(i: int = 0) -> UsageRecord:
    return UsageRecord(f"req-{i:04d}", "team-a", "key-a", "cloudbase", "m1", "dep", prompt_tokens=10,
                       completion_tokens=i, content="x" * 200, created_at=time.time())


def whole_lines(spool: Spool) -> list[dict]:
    data = spool.path.read_bytes()
    assert len(data) == spool.size and (not data or data.endswith(b"\n"))  # no half line, no extra byte
    return parse_lines(spool.path.name, data)


class ShortWrites(Spool):
    """A disk that takes `room` more bytes, then answers ENOSPC: a write across the edge is short."""
    room = 0

    @staticmethod
    def write(fd: int, data) -> int:
        if ShortWrites.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = os.write(fd, bytes(data[:ShortWrites.room]))
        ShortWrites.room -= n
        return n


def test_a_short_write_is_cut_back_to_the_last_whole_entry(tmp_path):
    spool = ShortWrites(tmp_path)
    ShortWrites.room = 10_000
    written = 0
    with pytest.raises(SpoolUnwritable):
        for i in range(100):
            spool.append(DONE, record(i))
            written += 1
    assert 0 < written < 100 and len(whole_lines(spool)) == written
    ShortWrites.room = 10_000  # space again: the next entry starts on a line of its own
    spool.append(DONE, record(999))
    assert [e["r"]["request_id"] for e in whole_lines(spool)][-1] == "req-0999"


def test_a_full_tmpfs_refuses_whole_entries_and_takes_them_again_when_freed(tmp_path):
    with small_tmpfs(tmp_path / "spool", "64k") as directory:
        spool = Spool(directory)
        ballast = fill(directory, leave=3000)
        landed = 0
        with pytest.raises(SpoolUnwritable):
            for i in range(100):
                spool.append(DONE, record(i))
                landed += 1
        assert len(whole_lines(spool)) == landed
        ballast.unlink()
        spool.append(DONE, record(500))
        assert len(whole_lines(spool)) == landed + 1
        spool.close(drained=False)


def test_the_cap_refuses_entries_past_it(tmp_path):
    spool = Spool(tmp_path, max_bytes=4000)
    with pytest.raises(SpoolUnwritable):
        for i in range(100):
            spool.append(DONE, record(i))
    lines = whole_lines(spool)
    # Filled to the cap, not past it: every appended line is whole, and one more would not have fit.
    last = spool.path.read_bytes().splitlines(keepends=True)[-1]
    assert len(lines) >= 2 and spool.size <= 4000 < spool.size + len(last)


def test_the_reader_skips_bytes_that_vanished_instead_of_waiting_for_them(tmp_path):
    spool = Spool(tmp_path)
    for i in range(20):
        spool.append(DONE, record(i))
    os.truncate(spool.path, spool.size // 2 + 7)  # someone else cut the file, mid-line
    entries, reached = spool.read(0, spool.size, 1 << 20)
    assert 0 < len(entries) < 20 and reached < spool.size  # the whole lines that are there
    rest, reached = spool.read(reached, spool.size, 1 << 20)
    assert rest == [] and reached == spool.size  # then on, at once: no loop on a missing tail


def test_replay_cuts_a_torn_tail_and_bills_journalled_progress(tmp_path):
    spool = Spool(tmp_path)
    spool.append(OPEN, record(1))
    spool.append(PROGRESS, {"request_id": "req-0001", "completion_tokens": 16})
    spool.append(PROGRESS, {"request_id": "req-0001", "completion_tokens": 32})
    spool.append(OPEN, record(2))
    spool.append(DONE, record(2))
    spool.append(OPEN, record(0))  # never got its first chunk out
    os.write(spool.fd, b'{"k":"done","r":{"request_id":"req-00')  # power lost mid-write
    records = {r["request_id"]: r for r in replay_records([spool.path])}
    assert spool.path.read_bytes().endswith(b"\n")  # the torn tail is gone from the file too
    assert records["req-0001"]["completion_tokens"] == 32 and records["req-0001"]["prompt_tokens"] == 10
    assert records["req-0002"]["completion_tokens"] == 2  # done: as it was recorded
    assert records["req-0000"]["prompt_tokens"] == records["req-0000"]["completion_tokens"] == 0


def test_a_failed_rotation_leaves_no_segment_of_open_entries_behind(tmp_path):
    spool = ShortWrites(tmp_path)
    ShortWrites.room = 1 << 20
    spool.append(DONE, record(0))
    old = spool.path
    line = len(orjson.dumps({"k": OPEN, "r": record(1)})) + 1
    ShortWrites.room = line + 10  # the first carried entry lands, the second does not
    with pytest.raises(SpoolUnwritable):
        spool.rotate([record(1), record(2)])
    assert spool.path == old and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [old.name, spool.lock_path.name])  # a replay would bill the half-made segment's open entries
    ShortWrites.room = 1 << 20
    spool.append(DONE, record(3))  # the old segment still takes entries
    assert [e["r"]["request_id"] for e in whole_lines(spool)] == ["req-0000", "req-0003"]


def test_a_rotation_carries_the_undrained_entries_whole_or_keeps_the_old_segment(tmp_path):
    spool = ShortWrites(tmp_path)
    ShortWrites.room = 1 << 20
    spool.append(DONE, record(0))
    drained = spool.size  # the database has req-0000; what follows it does not
    spool.append(OPEN, record(1))
    spool.append(PROGRESS, {"request_id": "req-0001", "completion_tokens": 7})
    spool.append(DONE, record(2))
    old, tail = spool.path, spool.path.read_bytes()[drained:]
    ShortWrites.room = len(orjson.dumps({"k": OPEN, "r": record(1)})) + 1 + len(tail) // 2  # the tail does not fit
    with pytest.raises(SpoolUnwritable):
        spool.rotate([record(1)], drained)
    assert spool.path == old and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [old.name, spool.lock_path.name]) and len(whole_lines(spool)) == 4  # nothing moved, nothing lost

    ShortWrites.room = 1 << 20
    carried_from = spool.rotate([record(1)], drained)
    assert spool.path != old and not old.exists()
    assert spool.path.read_bytes()[carried_from:] == tail  # byte for byte, after the open entry carried
    assert [(e["k"], e["r"]["request_id"]) for e in whole_lines(spool)] == [
        ("open", "req-0001"), ("open", "req-0001"), ("prog", "req-0001"), ("done", "req-0002")]
    replayed = {r["request_id"]: r for r in replay_records([spool.path])}
    assert sorted(replayed) == ["req-0001", "req-0002"] and replayed["req-0001"]["completion_tokens"] == 7


def test_an_orphan_scan_never_finds_a_lock_file_before_it_is_locked(tmp_path, monkeypatch):
    """The scan of another worker, run in the instant between a lock file's creation and its flock,
    must not take it for a dead owner's (and unlink it)."""
    scanner = Spool(tmp_path)
    real_flock, found = spool_module.fcntl.flock, []

    def flock_after_a_scan(fd, op):
        if not found:
            found.append([])  # before the scan, whose own flock comes here too
            found[0] = scanner.orphans()
            for orphan_fd, owner, _ in found[0]:
                scanner.release(orphan_fd, owner, replayed=True)
        return real_flock(fd, op)

    monkeypatch.setattr(spool_module.fcntl, "flock", flock_after_a_scan)
    newcomer = Spool(tmp_path)  # must not raise: its lock is its own
    monkeypatch.setattr(spool_module.fcntl, "flock", real_flock)
    assert found == [[]] and newcomer.lock_path.exists()
    assert [owner for _, owner, _ in scanner.orphans()] == []  # still held by the newcomer
