"""The ledger's durable local spool: an append-only journal in the data directory.

Every request writes an "open" entry when a deployment starts serving it and a "done" entry when it
ends, each with one write() (the page cache survives `kill -9`; fsyncs are grouped by the writer for
power loss). The database is the spool's drain. Each process owns its files through an flock on its
lock file; files whose owner died (the lock can be taken) are orphans, replayed by whoever finds them:
their done records, and their open ones never finished, which are billed as interrupted.
"""
from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

import orjson

log = logging.getLogger("cbgate.ledger")

OPEN, DONE = "open", "done"


def _lock(path: Path) -> int | None:
    """An exclusive flock on `path`, or None if a live process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def read_entries(path: Path, start: int = 0, end: int | None = None) -> list[dict]:
    """Complete, parseable entries between two offsets (a torn last line after power loss is skipped)."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read() if end is None else f.read(end - start)
    return _parse_lines(path, data)


def _parse_lines(path: Path, data: bytes) -> list[dict]:
    entries = []
    for line in data.splitlines():
        try:
            entries.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            log.warning("skipping a torn line in the ledger spool %s", path.name)
    return entries


def read_span(path: Path, start: int, end: int, limit: int) -> tuple[list[dict], int]:
    """Entries from `start` up to `end`, at most about `limit` bytes, cut after a whole line; and the
    offset reached, so a large backlog drains in pieces and no line is ever half-counted."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(min(end - start, limit))
    if start + len(data) < end and b"\n" in data:
        data = data[:data.rfind(b"\n") + 1]
    return _parse_lines(path, data), start + len(data)


class Spool:
    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.owner = f"{os.getpid()}-{os.urandom(4).hex()}"
        lock_path = directory / f"ledger-{self.owner}.lock"
        self.lock_fd = _lock(lock_path)
        if self.lock_fd is None or os.fstat(self.lock_fd).st_ino != lock_path.stat().st_ino:
            raise RuntimeError(f"could not take the ledger spool lock {lock_path}")
        self.seq = 0
        self.fd = -1
        self.size = 0
        self._open_segment()

    @property
    def path(self) -> Path:
        return self.directory / f"ledger-{self.owner}-{self.seq:06d}.jsonl"

    def _open_segment(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self.fd).st_size

    def append(self, kind: str, record) -> None:
        """One line per entry; `record` is a dataclass or dict (orjson writes both natively, fast)."""
        line = orjson.dumps({"k": kind, "r": record}) + b"\n"
        os.write(self.fd, line)
        self.size += len(line)

    def sync(self) -> None:
        os.fsync(self.fd)

    def rotate(self, still_open: list) -> None:
        """Start a new segment (carrying the entries still open) and drop the old, fully drained one."""
        old_fd, old_path = self.fd, self.path
        self.seq += 1
        self._open_segment()
        for record in still_open:
            self.append(OPEN, record)
        self.sync()
        os.close(old_fd)
        old_path.unlink(missing_ok=True)

    def close(self, drained: bool) -> None:
        """Release the files; a drained spool is removed, anything else stays for replay."""
        if self.fd < 0:
            return
        self.sync()
        os.close(self.fd)
        self.fd = -1
        if drained:
            self.path.unlink(missing_ok=True)
            (self.directory / f"ledger-{self.owner}.lock").unlink(missing_ok=True)
        if self.lock_fd is not None:
            os.close(self.lock_fd)

    def orphans(self) -> list[tuple[int, str, list[Path]]]:
        """(lock fd, owner, segments) for every owner that is gone; the caller must `release` each."""
        found = []
        for lock_path in sorted(self.directory.glob("ledger-*.lock")):
            owner = lock_path.name[len("ledger-"):-len(".lock")]
            if owner == self.owner:
                continue
            fd = _lock(lock_path)
            if fd is not None:
                found.append((fd, owner, sorted(self.directory.glob(f"ledger-{owner}-*.jsonl"))))
        return found

    def release(self, fd: int, owner: str, replayed: bool) -> None:
        if replayed:
            for path in self.directory.glob(f"ledger-{owner}-*.jsonl"):
                path.unlink(missing_ok=True)
            (self.directory / f"ledger-{owner}.lock").unlink(missing_ok=True)
        os.close(fd)


def replay_records(segments: list[Path]) -> list[dict]:
    """The records a dead owner's segments stand for: each done one, and each open one never done."""
    done: dict[str, dict] = {}
    opened: dict[str, dict] = {}
    for path in segments:
        for entry in read_entries(path):
            record = entry.get("r") or {}
            target = done if entry.get("k") == DONE else opened
            if "request_id" in record:
                target[record["request_id"]] = record
    return list(done.values()) + [r for rid, r in opened.items() if rid not in done]
