"""Budget counters in Redis, shared by every replica: one hash per budget period (`s` spent, `r` reserved),
checked and reserved by one atomic script per admission, settled by another when the request ends.

A hash that is missing (a new period, or a Redis that restarted empty) is never created by admission or
settlement: the script says so, and the replica rebuilds it from the ledger (`SpendBook`) and asks again.
A Redis that does not answer refuses the request (503): a budget, like the token quota, fails closed.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cbgate.limits.budgets import Charge, Counter, CounterUnavailable, Over, SpendBook, SpendSource

log = logging.getLogger("cbgate.limits")

# KEYS: one hash per charge; ARGV: limit, cost per charge. {1, i}: hash i is missing; {2, i, used}: budget i has
# no room; {0}: every charge reserved.
ADMIT = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then return {1, i, 0} end
end
for i, key in ipairs(KEYS) do
  local limit, cost = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local v = redis.call('HMGET', key, 's', 'r')
  local used = tonumber(v[1] or '0') + tonumber(v[2] or '0')
  if used >= limit or used + cost > limit then return {2, i, used} end
end
for i, key in ipairs(KEYS) do redis.call('HINCRBY', key, 'r', ARGV[2 * i]) end
return {0, 0, 0}
"""

# ARGV: cost, spent per charge. A hash Redis lost is left missing: the next admission rebuilds it from the
# ledger, which has this request's record.
SETTLE = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    local cost, spent = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
    if tonumber(redis.call('HGET', key, 'r') or '0') > cost then redis.call('HINCRBY', key, 'r', -cost)
    else redis.call('HSET', key, 'r', 0) end
    if spent ~= 0 then redis.call('HINCRBY', key, 's', spent) end
  end
end
return 0
"""

# ARGV: spent floor, reserved floor, expiry in epoch ms (-1: none) per counter. Only ever raises.
RAISE = """
for i, key in ipairs(KEYS) do
  local s, r, expiry = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local v = redis.call('HMGET', key, 's', 'r')
  if tonumber(v[1] or '-1') < s then redis.call('HSET', key, 's', s) end
  if tonumber(v[2] or '-1') < r then redis.call('HSET', key, 'r', r) end
  if expiry >= 0 then redis.call('PEXPIREAT', key, expiry) end
end
return 0
"""

MISSING, OVER = 1, 2


class RedisBudgetTicket:
    __slots__ = ("owner", "charges", "done")

    def __init__(self, owner: RedisBudgets, charges: tuple[Charge, ...]):
        self.owner, self.charges, self.done = owner, charges, False

    def finish(self, spent: tuple[int, ...]) -> None:
        if not self.done:
            self.done = True
            self.owner._finish(self, spent)


class RedisBudgets:
    def __init__(self, client: aioredis.Redis, prefix: str = "cbgate", source: SpendSource | None = None,
                 interval: float = 60.0, clock: Callable[[], float] = time.time):
        self.redis = client  # the limiter's: it owns and closes it
        self.prefix = prefix
        self.book = SpendBook(source, self._raise, interval, clock)
        self._admit = client.register_script(ADMIT)
        self._settle = client.register_script(SETTLE)
        self._raise_script = client.register_script(RAISE)
        self._pending: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None
        self.rebuilt = 0  # counters found missing and rebuilt from the ledger (a new period, or Redis lost them)

    def _key(self, counter: Counter) -> str:
        return f"{self.prefix}:budget:{counter.key}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self.book.run())

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def _raise(self, floors: dict[Counter, tuple[int, int]]) -> None:
        args = []
        for counter, (spent, reserved) in floors.items():
            expiry = counter.expires_at
            args += [spent, reserved, -1 if expiry is None else int(expiry * 1000)]
        await self._raise_script(keys=[self._key(c) for c in floors], args=args)

    async def admit(self, charges: tuple[Charge, ...]) -> RedisBudgetTicket:
        keys = [self._key(c.counter) for c in charges]
        args = [n for c in charges for n in (c.limit, c.cost)]
        try:
            await self.book.ensure([c.counter for c in charges])
            for _ in range(3):
                verdict, which, used = await self._admit(keys=keys, args=args)
                if verdict != MISSING:
                    break
                self.rebuilt += 1
                await self.book.reconcile([charges[which - 1].counter])
        except (RedisError, OSError) as exc:
            log.warning("budget counters unreachable, refusing: %s", exc)
            raise CounterUnavailable(str(exc)) from None
        if verdict == MISSING:
            raise CounterUnavailable("a budget counter kept disappearing from Redis")
        if verdict == OVER:
            raise Over(which - 1, int(used))
        for charge in charges:
            self.book.reserve(charge.counter.key, charge.cost)
        return RedisBudgetTicket(self, charges)

    def _finish(self, ticket: RedisBudgetTicket, spent: tuple[int, ...]) -> None:
        for charge in ticket.charges:
            self.book.release(charge.counter.key, charge.cost)
        task = asyncio.get_running_loop().create_task(self._settle_now(ticket, spent))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle_now(self, ticket: RedisBudgetTicket, spent: tuple[int, ...]) -> None:
        args = [n for charge, amount in zip(ticket.charges, spent) for n in (charge.cost, amount)]
        try:
            await self._settle(keys=[self._key(c.counter) for c in ticket.charges], args=args)
        except (RedisError, OSError) as exc:  # the reservation stays until the ledger reconciles the counter
            log.warning("could not settle budget counters: %s", exc)

    async def peek(self, counters: list[Counter]) -> dict[str, tuple[int, int]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for counter in counters:
                pipe.hmget(self._key(counter), "s", "r")
            found = await pipe.execute()
        return {c.key: (int(v[0] or 0), int(v[1] or 0)) for c, v in zip(counters, found) if v[0] is not None}
