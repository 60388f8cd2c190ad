"""`/metrics` across `cbgate serve --workers N`: each worker keeps its cheap in-memory counters (a few dict
updates per request, nothing shared on the hot path) and publishes a snapshot to a file of its own every
half second; whichever worker answers a scrape adds the others' files to its own live counts.

The same idea as the Prometheus client's multiprocess mode, without its per-update locks and file writes:
counters of a worker that is gone stay in the sum (they are cumulative), its in-flight gauge does not.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import orjson

from cbgate.core.metrics import Metrics

PUBLISH_INTERVAL = 0.5  # seconds: how stale another worker's counts may be in a scrape

log = logging.getLogger("cbgate.metrics")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SharedMetrics:
    def __init__(self, metrics: Metrics, directory: Path, pid: int | None = None):
        self.metrics = metrics
        self.directory = directory
        self.pid = pid or os.getpid()
        self.path = directory / f"worker-{self.pid}.json"

    def publish(self) -> None:
        """Write this worker's snapshot atomically (a reader never sees half a file)."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(self.metrics.snapshot()))
        os.replace(tmp, self.path)

    def render(self, snapshot_revision: int | None = None) -> bytes:
        total = Metrics()
        total.absorb(self.metrics.snapshot())
        for path in self.directory.glob("worker-*.json"):
            pid = int(path.stem.split("-", 1)[1])
            if pid == self.pid:
                continue  # our own counts are the live ones above
            try:
                total.absorb(orjson.loads(path.read_bytes()), gauges=_alive(pid))
            except (OSError, ValueError) as exc:  # a file being replaced, or torn by a crash
                log.warning("metrics of worker %s skipped: %s", pid, exc)
        return total.render(snapshot_revision)

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(PUBLISH_INTERVAL)
                await asyncio.to_thread(self.publish)
        finally:
            self.publish()  # the last counts of a worker that stops stay in the sum


def prepare_metrics_dir(data_dir: Path, serve_pid: int) -> Path:
    """A fresh directory for one `cbgate serve` run; those of runs no longer alive are removed."""
    root = data_dir / "metrics"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.is_dir() and old.name.isdigit() and not _alive(int(old.name)):
            for f in old.iterdir():
                f.unlink(missing_ok=True)
            old.rmdir()
    mine = root / str(serve_pid)
    mine.mkdir(exist_ok=True)
    return mine
