"""Supervision of the engine's child process: start it, notice when it dies, start it again after a
backoff that grows while crashes keep coming, and let requests wait (bounded) for it to be back.

Native code runs only in the child, so a crash there costs the requests it was serving, never the gateway.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Callable

import aiohttp

from cbgate.providers.local.child import EngineChild, EngineDied

log = logging.getLogger("cbgate.engine")


def _say(message: str) -> None:
    print(f"cbgate: {message}", file=sys.stderr, flush=True)


class Backoff:
    """Seconds to wait before a restart: `first` after a crash, doubling up to `cap` while the engine keeps
    dying soon after it started; a run that lasted `stable_after` seconds starts the count again."""

    def __init__(self, first: float = 0.25, cap: float = 30.0, stable_after: float = 60.0):
        self.first, self.cap, self.stable_after = first, cap, stable_after
        self.crashes = 0

    def next_delay(self, ran_for: float) -> float:
        if ran_for >= self.stable_after:
            self.crashes = 0
        self.crashes += 1
        return min(self.cap, self.first * 2 ** (self.crashes - 1))


class EngineSupervisor:
    def __init__(self, name: str, make_child: Callable[[], EngineChild], backoff: Backoff | None = None):
        self.name = name
        self.make_child = make_child
        self.backoff = backoff or Backoff()
        self.child: EngineChild | None = None
        self.restarts = 0
        self.last_failure = ""  # how the engine last died, for the requests that wait for it
        self._up = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._watcher: asyncio.Task | None = None

    @property
    def up(self) -> bool:
        return self._up.is_set()

    async def start(self) -> None:
        """Start the engine and wait until it evaluated a token; raises EngineDied when it cannot."""
        self._session = aiohttp.ClientSession()
        try:
            await self._launch(announce=True)
        except BaseException:
            await self.close()
            raise
        self._watcher = asyncio.create_task(self._watch(), name=f"cbgate-engine-{self.name}")

    async def _launch(self, announce: bool = False) -> None:
        child = self.make_child()
        self.child = child
        if announce:  # the operator's terminal shows the slow first start
            _say(f"loading {child.options.model.name} into the embedded engine ({self.name}: llama-server, "
                 f"{child.options.parallel} sequences at a time) ...")
        await child.start()
        try:
            tokens = await child.wait_ready(self._session)
        except BaseException:
            await child.stop(grace=1.0)
            raise
        message = (f"embedded engine ready: {self.name} (llama-server pid {child.proc.pid} on 127.0.0.1:{child.port}) "
                   f"evaluated {tokens} tokens")
        threads = (f"embedded engine {self.name} threads: {child.options.threads} decoding one sequence, "
                   f"{child.options.threads_batch} for a batch ({child.options.threads_how or 'fixed rule'})")
        if announce:
            _say(message)
            _say(threads)
        else:
            log.info(message)
            log.info(threads)
        self._up.set()

    async def _watch(self) -> None:
        while True:
            child = self.child
            await child.proc.wait()
            self._up.clear()
            self.last_failure = str(child.died())
            ran_for = time.monotonic() - child.started_at
            delay = self.backoff.next_delay(ran_for)
            log.error("embedded engine %s: %s; restarting it in %.2fs (restart %d)", self.name, self.last_failure,
                      delay, self.restarts + 1)
            while True:
                await asyncio.sleep(delay)
                self.restarts += 1
                try:
                    await self._launch()
                    break
                except Exception as exc:  # noqa: BLE001 - whatever a start raises, the next try must come
                    self.last_failure = str(exc) if isinstance(exc, (EngineDied, OSError)) \
                        else f"{type(exc).__name__}: {exc}"
                    delay = self.backoff.next_delay(0.0)
                    log.error("embedded engine %s did not come back: %s; next try in %.2fs", self.name, exc, delay)
            log.warning("embedded engine %s is back after restart %d", self.name, self.restarts)

    async def ready(self, timeout: float) -> EngineChild:
        """The running engine, waiting up to `timeout` seconds while it restarts."""
        if not self._up.is_set():
            try:
                await asyncio.wait_for(self._up.wait(), timeout)
            except TimeoutError:
                raise EngineDied(f"the embedded engine is not back yet ({self.last_failure})") from None
        return self.child

    async def lost(self, child: EngineChild, wait: float = 1.0) -> bool:
        """Whether `child` died (a broken connection is usually the first sign, its exit comes just after)."""
        try:
            await asyncio.wait_for(child.proc.wait(), wait)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self.child is not None:
            await self.child.stop()
        self._up.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
