"""The gateway's queue in front of the engine's slots: at most `slots` requests are in the engine, at most
`limit` more wait, and a freed slot goes to the environments in turn (round robin), so one busy
environment cannot starve another. A request that finds the queue full is refused at once (429).
"""
from __future__ import annotations

import asyncio
from collections import deque
from contextlib import asynccontextmanager
from typing import AsyncIterator

from cbgate.errors import ConcurrencyExceeded


class FairQueue:
    def __init__(self, slots: int, limit: int, per_tenant: int | None = None):
        if slots < 1 or limit < 0:
            raise ValueError("an engine queue needs at least one slot and a limit of zero or more")
        self.slots = slots
        self.limit = limit
        # One environment may fill at most about half the queue, so another can still get in line.
        self.per_tenant = per_tenant if per_tenant is not None else max(1, (limit + 1) // 2) if limit else 0
        self.busy = 0  # requests holding a slot (in the engine now)
        self.waiting = 0
        self._lines: dict[str, deque[asyncio.Future]] = {}  # tenant -> its waiters, oldest first
        self._turns: deque[str] = deque()  # tenants with waiters, in the order they get the next slot

    @asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        await self.acquire(tenant)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, tenant: str) -> None:
        if self.busy < self.slots and not self.waiting:
            self.busy += 1
            return
        line = self._lines.get(tenant)
        if self.waiting >= self.limit or (line is not None and len(line) >= self.per_tenant):
            raise ConcurrencyExceeded(f"the embedded engine is busy: {self.busy} requests are running and "
                                      f"{self.waiting} waiting; try again shortly")
        if line is None:
            line = self._lines[tenant] = deque()
            self._turns.append(tenant)
        waiter = asyncio.get_running_loop().create_future()
        line.append(waiter)
        self.waiting += 1
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot came as the caller left: pass it on
            else:
                self._forget(tenant, waiter)
            raise

    def release(self) -> None:
        """Give the freed slot to the next environment in turn, or free it."""
        while self._turns:
            tenant = self._turns.popleft()
            line = self._lines[tenant]
            waiter = line.popleft()
            self.waiting -= 1
            if line:
                self._turns.append(tenant)  # back of the rotation
            else:
                del self._lines[tenant]
            if not waiter.done():
                waiter.set_result(None)
                return
        self.busy -= 1

    def _forget(self, tenant: str, waiter: asyncio.Future) -> None:
        line = self._lines.get(tenant)
        if line is None or waiter not in line:
            return
        line.remove(waiter)
        self.waiting -= 1
        if not line:
            del self._lines[tenant]
            self._turns.remove(tenant)
