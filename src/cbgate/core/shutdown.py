"""The shutdown deadline: from SIGTERM, the process exits within `seconds`, come what may.

Streams still running `cut_after` seconds in are ended by the gateway: their meter records a gateway
error (not a client disconnect) and the route sends a final error event. The ledger's last flush gets
what is left; a watchdog thread ends the process at the deadline if anything (a database that does not
answer, a stuck thread) still holds it. The spool already holds every record, so nothing is lost.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Callable

from cbgate.core.metering import Meter, StreamCut

log = logging.getLogger("cbgate")

HARD_STOP_STATUS = 70  # the exit status when the watchdog had to end the process


class ShutdownDeadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.streams: dict[asyncio.Task, Meter] = {}
        self.began_at: float | None = None

    @property
    def cut_after(self) -> float:
        """Streams are cut here, leaving the rest of the deadline to answer them and flush the ledger."""
        return self.seconds - min(5.0, self.seconds / 2)

    def remaining(self) -> float:
        if self.began_at is None:
            return self.seconds
        return max(0.0, self.began_at + self.seconds - time.monotonic())

    def track(self, meter: Meter) -> Callable[[], None]:
        """Register the running task's stream; call what it returns when the stream ended."""
        task = asyncio.current_task()
        self.streams[task] = meter
        return lambda: self.streams.pop(task, None)

    def begin(self) -> None:
        """The shutdown started (SIGTERM): arm the stream cut and the watchdog. Runs on the event loop."""
        if self.began_at is not None:
            return
        self.began_at = time.monotonic()
        asyncio.get_running_loop().call_later(self.cut_after, self.cut_streams)
        threading.Thread(target=self._hard_stop, name="cbgate-shutdown-watchdog", daemon=True).start()
        log.info("shutting down: streams end within %.1fs, the process within %.1fs", self.cut_after, self.seconds)

    def cut_streams(self) -> None:
        if self.streams:
            log.warning("shutdown deadline: ending %d running streams with an error event", len(self.streams))
        for task, meter in list(self.streams.items()):
            if not task.done():
                meter.cut = StreamCut("the gateway is shutting down; this stream was ended at its deadline")
                task.cancel()

    def _hard_stop(self) -> None:
        time.sleep(self.seconds)
        log.error("shutdown deadline of %.1fs passed; exiting now (the ledger spool keeps every record)",
                  self.seconds)
        logging.shutdown()
        os._exit(HARD_STOP_STATUS)
