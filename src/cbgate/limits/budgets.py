"""The budget counter contract shared by the in-process and the Redis counter, and where counters meet the
ledger (`SpendBook`).

A counter holds what one budget's current period has spent (settled) and reserved (requests running). A
request is admitted under every budget that applies to it at once: each must have room for its worst case
(`spent + reserved + cost <= limit`, and a budget already spent refuses even a free request), or none is
charged. The ticket settles each reservation to the request's real spend, from its ledger record.

A counter is keyed by its budget, its unit and its period's start, so a new period starts a new counter
and a request that began in the last one settles there. A counter this process has not reconciled yet, or
one the store lost (a Redis restarted empty), is rebuilt from the ledger's records of that period first.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol

log = logging.getLogger("cbgate.limits")

EXPIRY_MARGIN = 86400.0  # a finished period's counter is kept this long after its end (late settlements)


@dataclass(frozen=True, slots=True)
class Counter:
    """One budget's counter for one period, and what the ledger query that rebuilds it needs."""
    key: str  # "<budget id>:<unit>:<period start>"
    env_id: str
    key_id: str | None  # None: the environment's every request
    unit: str  # "tokens", or a currency code
    start: float
    end: float | None  # None: a total budget, which never resets

    @property
    def expires_at(self) -> float | None:
        return None if self.end is None else self.end + EXPIRY_MARGIN


@dataclass(frozen=True, slots=True)
class Charge:
    counter: Counter
    limit: int
    cost: int  # the request's worst case in the counter's unit


class Over(Exception):
    """The budget of `charges[index]` has no room for the request; `used` is its spent plus reserved."""

    def __init__(self, index: int, used: int):
        super().__init__(index, used)
        self.index, self.used = index, used


class CounterUnavailable(Exception):
    """The counters' store (Redis, or the ledger that rebuilds a counter) did not answer."""


class BudgetTicket(Protocol):
    def finish(self, spent: tuple[int, ...]) -> None:
        """Settle each charge's reservation to what the request really spent; idempotent, never blocks."""


class BudgetCounter(Protocol):
    async def admit(self, charges: tuple[Charge, ...]) -> BudgetTicket:
        """Reserve every charge at once, or raise `Over` naming the first budget without room (charging none),
        or `CounterUnavailable`."""

    async def peek(self, counters: list[Counter]) -> dict[str, tuple[int, int]]:
        """(spent, reserved) of each counter that exists now, by its key."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


# counters -> what the ledger says each spent in its period (the process's own spool flushed first)
SpendSource = Callable[[list[Counter]], Awaitable[dict[str, int]]]


class SpendBook:
    """Where budget counters meet the ledger, for either counter. A counter is rebuilt before this process
    first uses it (a start, a new period) and whenever its store lost it; every `interval` seconds the
    counters in use are brought up to the ledger (replicas without a shared Redis learn each other's spend
    that way). Spend only moves up here: a ledger that lags a moment never lowers a counter."""

    def __init__(self, source: SpendSource | None, raise_to: Callable[[dict[Counter, tuple[int, int]]], Awaitable[None]],
                 interval: float = 60.0, clock: Callable[[], float] = time.time,
                 forget: Callable[[str], None] | None = None):
        self.source = source
        self.raise_to = raise_to  # counter -> (spent floor, reserved floor)
        self.interval = interval
        self.clock = clock
        self.forget = forget  # a period long over: the counter's owner may drop it (Redis expires its own)
        self.seen: dict[str, Counter] = {}  # counters this process has rebuilt, by key
        self.reserved: dict[str, int] = {}  # counter key -> what this process's running requests reserved
        self._lock = asyncio.Lock()

    def reserve(self, key: str, amount: int) -> None:
        self.reserved[key] = self.reserved.get(key, 0) + amount

    def release(self, key: str, amount: int) -> None:
        left = self.reserved.get(key, 0) - amount
        if left > 0:
            self.reserved[key] = left
        else:
            self.reserved.pop(key, None)

    async def ensure(self, counters: list[Counter]) -> None:
        unseen = [c for c in counters if c.key not in self.seen]
        if not unseen:
            return
        async with self._lock:
            unseen = [c for c in unseen if c.key not in self.seen]
            if unseen:
                await self.reconcile(unseen)

    async def reconcile(self, counters: list[Counter]) -> None:
        try:
            found = await self.source(counters) if self.source is not None else {}
        except Exception as exc:
            raise CounterUnavailable(f"the ledger did not answer: {exc}") from exc
        await self.raise_to({c: (found.get(c.key, 0), self.reserved.get(c.key, 0)) for c in counters})
        for counter in counters:
            self.seen[counter.key] = counter

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            now = self.clock()
            for key, counter in list(self.seen.items()):  # a period long over is not reconciled again
                if counter.expires_at is not None and counter.expires_at < now:
                    del self.seen[key]
                    if self.forget is not None:
                        self.forget(key)
            if not self.seen:
                continue
            try:
                await self.reconcile(list(self.seen.values()))
            except Exception as exc:  # the ledger or Redis away: the next round tries again
                log.warning("could not reconcile budget counters with the ledger: %s", exc)
