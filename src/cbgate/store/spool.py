"""The ledger's durable local spool: an append-only journal in the data directory.

Every request writes a "open" entry when a deployment starts serving it, "prog" entries as a stream's
tokens go out, and a "done" entry when it ends. The database is the spool's drain. Each process owns
its files through an flock on its lock file; files whose owner died (the lock can be taken) are
orphans, replayed by whoever finds them: their done records, and their open ones never finished,
billed as interrupted with the progress last journalled.

The spool never lies about what it holds:
- an entry is written whole or not at all: a short write (a full disk) is cut back to the last whole
  line, and the entry's caller is told (`SpoolUnwritable`);
- `size` counts only bytes this process wrote and saw land, and the drain reads them back through the
  segment's own descriptor, so a directory unmounted or replaced underneath still drains, and is noticed
  (`detached()`) so new entries go where a restart will find them;
- a torn last line (power loss) is cut off before a dead owner's segments are replayed;
- the spool holds at most `max_bytes` undrained: past that, entries are refused like on a full disk.

fsync policy: each entry is one write() into the page cache, which survives `kill -9` of the process;
the drain fsyncs the segment before each database round (every 0.5 s, sooner under load), and
rotation and shutdown fsync too, so a power loss can cost at most the last half second of entries.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path

import orjson

log = logging.getLogger("cbgate.ledger")

OPEN, DONE, PROGRESS = "open", "done", "prog"


class SpoolUnwritable(OSError):
    """An entry could not be made durable: the spool's disk is full, unwritable, or the cap is reached."""


def _lock(path: Path) -> int | None:
    """An exclusive flock on the existing `path`, or None if a live process holds it (or it is gone).
    Never creates it: a lock file appears only already locked (`_create_lock`)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _create_lock(path: Path) -> int:
    """A new lock file at `path`, flocked before it appears there: created and flocked under a name the
    orphan scan does not match, then renamed into place, so another worker's scan never finds it
    unlocked (and takes it for a dead owner's, and unlinks it) in between."""
    staging = path.with_name(f".{path.name}.{os.urandom(4).hex()}")
    fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(staging, path)
    except OSError:
        os.close(fd)
        staging.unlink(missing_ok=True)
        raise
    return fd


def parse_lines(name: str, data: bytes) -> list[dict]:
    entries = []
    for line in data.splitlines():
        try:
            entries.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            log.warning("skipping a torn line in the ledger spool %s", name)
    return entries


def repair_tail(path: Path) -> bytes:
    """A dead owner's segment, cut back to its last whole line (a torn tail is what power loss leaves)."""
    with open(path, "r+b") as f:
        data = f.read()
        whole = data.rfind(b"\n") + 1
        if whole < len(data):
            log.warning("cutting a torn tail of %d bytes off the ledger spool %s", len(data) - whole, path.name)
            f.truncate(whole)
    return data[:whole]


def _same_file(path: Path, fd: int) -> bool:
    try:
        on_disk = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


class Spool:
    write = staticmethod(os.write)  # the one call that puts bytes on disk (fault tests replace it)

    def __init__(self, directory: Path, max_bytes: int = 256 * 1024 * 1024):
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self.owner = f"{os.getpid()}-{os.urandom(4).hex()}"
        self.seq = 0
        self.fd = -1
        self.lock_fd: int | None = None
        self.size = 0  # bytes of whole entries this process wrote into the current segment
        self.path = directory / "unset"
        self.torn = False  # a short write could not be cut back: append nothing after it
        self._take_lock()
        self._open_segment()

    @property
    def lock_path(self) -> Path:
        return self.directory / f"ledger-{self.owner}.lock"

    def _take_lock(self) -> None:
        """Raises SpoolUnwritable (an OSError, so a failed rotation keeps the old segment) on failure."""
        try:
            fd = _create_lock(self.lock_path)
        except OSError as exc:
            raise SpoolUnwritable(exc.errno or errno.EIO,
                                  f"could not take the ledger spool lock {self.lock_path}: {exc}") from exc
        if self.lock_fd is not None:
            os.close(self.lock_fd)
        self.lock_fd = fd

    def _open_segment(self) -> None:
        self.path = self.directory / f"ledger-{self.owner}-{self.seq:06d}.jsonl"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self.fd).st_size
        self.torn = False

    def append(self, kind: str, record) -> None:
        """One line per entry; `record` is a dataclass or dict (orjson writes both natively, fast).
        Raises SpoolUnwritable when the entry did not land whole; the spool is then as it was."""
        line = orjson.dumps({"k": kind, "r": record}, option=orjson.OPT_APPEND_NEWLINE)  # no copy to add it
        if self.size + len(line) > self.max_bytes:
            raise SpoolUnwritable(errno.ENOSPC, f"the ledger spool holds its cap of {self.max_bytes} bytes")
        if self.torn:
            self._cut_back()
        self._write_whole(line)

    def _write_whole(self, data: bytes) -> None:
        """`data` (whole lines) lands at the segment's end, or none of it does (SpoolUnwritable)."""
        written = 0
        try:
            while written < len(data):
                n = self.write(self.fd, data[written:] if written else data)
                if n <= 0:
                    raise OSError(errno.ENOSPC, "the spool's disk took no bytes")
                written += n
        except OSError as exc:
            if written:
                self.torn = True
                self._cut_back()
            raise SpoolUnwritable(exc.errno or errno.EIO, f"could not write the ledger spool: {exc}") from exc
        self.size += len(data)

    def _cut_back(self) -> None:
        """Remove a partly written line, so the next entry starts on a line of its own."""
        try:
            os.ftruncate(self.fd, self.size)
        except OSError as exc:
            raise SpoolUnwritable(exc.errno or errno.EIO, f"could not repair the ledger spool: {exc}") from exc
        self.torn = False

    def read(self, start: int, end: int, limit: int) -> tuple[list[dict], int]:
        """Entries between two offsets this process wrote, at most about `limit` bytes, cut after a whole
        line; and the offset reached. Read through the segment's own descriptor, never by its path."""
        want = min(end - start, limit)
        data = os.pread(self.fd, want, start)
        if len(data) < want or (start + len(data) < end and b"\n" in data):
            data = data[:data.rfind(b"\n") + 1]
        if not data and start < end:  # the file lost bytes we wrote: never wait for them to come back
            log.error("the ledger spool %s is shorter than what was written to it; skipping %d bytes",
                      self.path.name, end - start)
            return [], end
        return parse_lines(self.path.name, data), start + len(data)

    def sync(self) -> None:
        os.fsync(self.fd)

    def detached(self) -> bool:
        """True when the segment's path no longer names the file written (the directory was unmounted
        or replaced): a restart would not find these entries there."""
        return not _same_file(self.path, self.fd)

    def rotate(self, still_open: list, undrained_from: int | None = None) -> int:
        """Start a new segment and drop the old one, whose entries up to `undrained_from` (all of them when
        None) the database has. The new segment carries the entries still open, then the old one's bytes
        from `undrained_from` on, as they were: a busy gateway's drain never catches up with the last
        entry, and its segment must still be replaced. Returns the new segment's offset where those bytes
        begin. After a detach, the new segment (and lock) are made in the directory as it is now."""
        old_fd, old_path, was_detached = self.fd, self.path, self.detached()
        old_size = self.size
        self.seq += 1
        try:
            start = old_size if undrained_from is None else undrained_from
            tail = os.pread(old_fd, old_size - start, start) if start < old_size else b""
            if len(tail) != old_size - start:  # never drop what the file lost: the old segment stays
                raise OSError(errno.EIO, "the segment is shorter than what was written to it")
            if was_detached:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._take_lock()
            self._open_segment()
            for record in still_open:
                self.append(OPEN, record)
            carried_from = self.size
            if tail:
                self._write_whole(tail)
            self.sync()
        except OSError as exc:
            if self.fd != old_fd:
                os.close(self.fd)
            if self.path != old_path:  # its open entries would otherwise be billed again on a replay
                try:
                    self.path.unlink(missing_ok=True)
                except OSError as unlink_exc:
                    log.error("could not remove the failed ledger spool segment %s: %s", self.path.name, unlink_exc)
            self.fd, self.path, self.size = old_fd, old_path, old_size
            raise SpoolUnwritable(exc.errno or errno.EIO, f"could not start a ledger spool segment: {exc}") from exc
        if _same_file(old_path, old_fd):
            old_path.unlink(missing_ok=True)
        os.close(old_fd)
        return carried_from

    def close(self, drained: bool) -> None:
        """Release the files; a drained spool is removed, anything else stays for replay."""
        if self.fd < 0:
            return
        try:
            self.sync()
        except OSError as exc:
            log.error("could not sync the ledger spool at shutdown: %s", exc)
        if drained and _same_file(self.path, self.fd):
            self.path.unlink(missing_ok=True)
            self.lock_path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = -1
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
    """The records a dead owner's segments stand for: each done one, and each open one never done,
    with the completion tokens its last progress entry counted (and its prompt only if one was)."""
    done: dict[str, dict] = {}
    opened: dict[str, dict] = {}
    progress: dict[str, int] = {}
    for path in segments:
        for entry in parse_lines(path.name, repair_tail(path)):
            kind, record = entry.get("k"), entry.get("r") or {}
            rid = record.get("request_id")
            if rid is None:
                continue
            if kind == PROGRESS:
                progress[rid] = max(progress.get(rid, 0), int(record.get("completion_tokens") or 0))
            else:
                (done if kind == DONE else opened)[rid] = record
    interrupted = []
    for rid, record in opened.items():
        if rid not in done:
            tokens = max(progress.get(rid, 0), int(record.get("completion_tokens") or 0))
            # no chunk went out before the crash: like any failure before the first byte, it bills nothing
            prompt = record.get("prompt_tokens", 0) if tokens else 0
            interrupted.append({**record, "prompt_tokens": prompt, "completion_tokens": tokens})
    return list(done.values()) + interrupted
