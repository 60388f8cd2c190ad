"""A small tmpfs under a directory, for a spool that really fills up (root only; unmounted after)."""
from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

import pytest


def can_mount() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str):
    if not can_mount():
        pytest.skip("mounting a tmpfs needs root; the spool's own tests cover short writes without it")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path, leave: int = 0) -> Path:
    """A ballast file that takes all the space but about `leave` bytes."""
    ballast = directory / "ballast"
    chunk = b"\0" * 65536
    with open(ballast, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        while True:
            try:
                f.write(b"\0" * 4096)
            except OSError:
                break
        if leave:
            f.truncate(max(0, f.tell() - leave))
    return ballast
