"""The spool never lies about what it holds: short writes are cut back and refused, the cap holds, the
reader never waits for bytes that are not there, and a torn tail is cut before a replay."""
from __future__ import annotations

import errno
import os
import time

import pytest

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
    assert 4000 - 700 < spool.size <= 4000 and len(lines) == 6  # filled to the cap, not past it


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
