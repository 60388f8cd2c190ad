"""In-process budget counters (one gateway process on SQLite): spent and reserved per budget period, on the
event loop (one thread touches them, so no locks). The same rules as the Redis counter's script."""
from __future__ import annotations

import asyncio
import time
from typing import Callable

from cbgate.limits.budgets import Charge, Counter, Over, SpendBook, SpendSource


class MemoryBudgetTicket:
    __slots__ = ("owner", "charges", "done")

    def __init__(self, owner: MemoryBudgets, charges: tuple[Charge, ...]):
        self.owner, self.charges, self.done = owner, charges, False

    def finish(self, spent: tuple[int, ...]) -> None:
        if self.done:
            return
        self.done = True
        for charge, amount in zip(self.charges, spent):
            state = self.owner.counters.get(charge.counter.key)
            if state is not None:
                state[1] = max(0, state[1] - charge.cost)
                state[0] += amount
            self.owner.book.release(charge.counter.key, charge.cost)


class MemoryBudgets:
    def __init__(self, source: SpendSource | None = None, interval: float = 60.0,
                 clock: Callable[[], float] = time.time):
        self.counters: dict[str, list[int]] = {}  # counter key -> [spent, reserved]
        self.book = SpendBook(source, self._raise, interval, clock, forget=lambda key: self.counters.pop(key, None))
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.book.run())

    async def close(self) -> None:
        if self._task:
            self._task.cancel()

    async def _raise(self, floors: dict[Counter, tuple[int, int]]) -> None:
        for counter, (spent, reserved) in floors.items():
            state = self.counters.setdefault(counter.key, [0, 0])
            state[0], state[1] = max(state[0], spent), max(state[1], reserved)

    async def admit(self, charges: tuple[Charge, ...]) -> MemoryBudgetTicket:
        await self.book.ensure([c.counter for c in charges])
        states = [self.counters.setdefault(c.counter.key, [0, 0]) for c in charges]
        for i, (charge, state) in enumerate(zip(charges, states)):
            used = state[0] + state[1]
            if used >= charge.limit or used + charge.cost > charge.limit:
                raise Over(i, used)
        for charge, state in zip(charges, states):
            state[1] += charge.cost
            self.book.reserve(charge.counter.key, charge.cost)
        return MemoryBudgetTicket(self, charges)

    async def peek(self, counters: list[Counter]) -> dict[str, tuple[int, int]]:
        return {c.key: tuple(self.counters[c.key]) for c in counters if c.key in self.counters}
