"""Budget counters in Redis, shared by every replica: one hash per budget period, checked and reserved by one
atomic script per admission, settled by another when the request ends. The hash holds `s`, what was spent,
and `r:<replica>`, what each replica's running requests reserved.

A replica keeps a liveness key (`<prefix>:budget-alive:<replica>`, refreshed by every admission and every
ALIVE/3 seconds); the admission script drops the reservations of a replica whose key expired, so a replica
killed with `kill -9` does not hold its requests' reservations for the rest of the period (their records, replayed
from its spool by its next start, reach the spend through the ledger's reconciliation).

A hash that is missing (a new period, or a Redis that restarted empty) is never created by admission or
settlement: the script says so, and the replica rebuilds it from the ledger (`SpendBook`) and asks again.
A Redis that does not answer refuses the request (503): a budget, like the token quota, fails closed.
(The scripts touch the liveness keys they find in a hash: one Redis, not a Redis Cluster.)
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cbgate.limits.budgets import Charge, Counter, CounterUnavailable, Over, SpendBook, SpendSource

log = logging.getLogger("cbgate.limits")

ALIVE_MS = 15_000  # a replica that has not said it is alive for this long has its reservations dropped

# What a hash holds in all: spent plus every live replica's reservations (a dead replica's are dropped here).
USED = """
local function used(key, mine, alive)
  local fields, total = redis.call('HGETALL', key), 0
  for j = 1, #fields, 2 do
    local name, value = fields[j], tonumber(fields[j + 1])
    if name == 's' then total = total + value
    elseif name ~= mine and redis.call('EXISTS', alive .. string.sub(name, 3)) == 0 then redis.call('HDEL', key, name)
    else total = total + value end
  end
  return total
end
"""

# KEYS: one hash per charge; ARGV: this replica's id, the liveness keys' prefix, ALIVE_MS, then limit and cost
# per charge. {1, i}: hash i is missing; {2, i, used}: budget i has no room; {0}: every charge reserved.
ADMIT = USED + """
local me, alive = ARGV[1], ARGV[2]
local mine = 'r:' .. me
redis.call('SET', alive .. me, 1, 'PX', ARGV[3])
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then return {1, i, 0} end
end
for i, key in ipairs(KEYS) do
  local limit, cost = tonumber(ARGV[2 * i + 2]), tonumber(ARGV[2 * i + 3])
  local total = used(key, mine, alive)
  if total >= limit or total + cost > limit then return {2, i, total} end
end
for i, key in ipairs(KEYS) do redis.call('HINCRBY', key, mine, ARGV[2 * i + 3]) end
return {0, 0, 0}
"""

# ARGV: this replica's reservation field, then cost and spent per charge. A hash Redis lost is left missing: the
# next admission rebuilds it from the ledger, which has this request's record.
SETTLE = """
local mine = ARGV[1]
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    local cost, spent = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
    local held = tonumber(redis.call('HGET', key, mine) or '0')
    if held > cost then redis.call('HINCRBY', key, mine, -cost) else redis.call('HDEL', key, mine) end
    if spent ~= 0 then redis.call('HINCRBY', key, 's', spent) end
  end
end
return 0
"""

# ARGV: this replica's reservation field, then spent floor, its reserved floor and expiry in epoch ms (-1: none)
# per counter. Only ever raises.
RAISE = """
local mine = ARGV[1]
for i, key in ipairs(KEYS) do
  local s, r, expiry = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  if tonumber(redis.call('HGET', key, 's') or '-1') < s then redis.call('HSET', key, 's', s) end
  if r > 0 and tonumber(redis.call('HGET', key, mine) or '0') < r then redis.call('HSET', key, mine, r) end
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
        self._alive_task: asyncio.Task | None = None
        self.replica = os.urandom(6).hex()
        self.mine = f"r:{self.replica}"  # this replica's reservations in each hash
        self.alive = f"{prefix}:budget-alive:"
        self.rebuilt = 0  # counters found missing and rebuilt from the ledger (a new period, or Redis lost them)

    def _key(self, counter: Counter) -> str:
        return f"{self.prefix}:budget:{counter.key}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self.book.run())
        self._alive_task = asyncio.create_task(self._keep_alive())

    async def close(self) -> None:
        for task in (self._task, self._alive_task):
            if task:
                task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        try:  # this replica's reservations were settled above; its liveness key need not wait to expire
            await self.redis.delete(self.alive + self.replica)
        except (RedisError, OSError):
            pass

    async def _keep_alive(self) -> None:
        """While this replica runs (its streams may outlast ALIVE_MS), its reservations are its own."""
        while True:
            await asyncio.sleep(ALIVE_MS / 3000)
            try:
                await self.redis.set(self.alive + self.replica, 1, px=ALIVE_MS)
            except (RedisError, OSError) as exc:
                log.warning("could not refresh this replica's budget liveness: %s", exc)

    async def _raise(self, floors: dict[Counter, tuple[int, int]]) -> None:
        args = [self.mine]
        for counter, (spent, reserved) in floors.items():
            expiry = counter.expires_at
            args += [spent, reserved, -1 if expiry is None else int(expiry * 1000)]
        await self._raise_script(keys=[self._key(c) for c in floors], args=args)

    async def admit(self, charges: tuple[Charge, ...]) -> RedisBudgetTicket:
        keys = [self._key(c.counter) for c in charges]
        args = [self.replica, self.alive, ALIVE_MS, *(n for c in charges for n in (c.limit, c.cost))]
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
        args = [self.mine, *(n for charge, amount in zip(ticket.charges, spent) for n in (charge.cost, amount))]
        try:
            await self._settle(keys=[self._key(c.counter) for c in ticket.charges], args=args)
        except (RedisError, OSError) as exc:  # the reservation stays until the ledger reconciles the counter
            log.warning("could not settle budget counters: %s", exc)

    async def peek(self, counters: list[Counter]) -> dict[str, tuple[int, int]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for counter in counters:
                pipe.hgetall(self._key(counter))
            found = await pipe.execute()
        return {c.key: (int(v.get(b"s", 0)), sum(int(n) for f, n in v.items() if f.startswith(b"r:")))
                for c, v in zip(counters, found) if v}
