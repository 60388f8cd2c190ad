"""Redis limiter: every replica admits through one atomic Lua script (one round trip per admission).

Concurrency slots are leases, a ZSET of slot ids scored by expiry: the script prunes expired ones
before counting, and each replica refreshes the leases of its running requests every `lease/3`, so a
replica killed with `kill -9` stops refreshing and its slots free themselves within `lease` seconds.
Requests per minute are a sliding log (ZSET of admission times); tokens per minute a counter per
minute; the quota a counter of tokens used or reserved, settled to the real usage when a request ends.
A request's scopes (its environment's, and its key's own limits when it has some) are checked and charged
by the same script: all pass or none is charged.

Redis that restarts empty loses leases and counters. The admission script notices (this replica's marker
key, or an env's quota counter, is missing) and says so instead of admitting: the replica re-adds its
running requests' leases, or reconciles the quota counter with the ledger, and asks again. Lease
refreshes re-add a lease that is gone (`ZADD` without `XX`). Pooled connections are health-checked
before use after a pause and a failed send is retried once on a new connection, so a Redis that
answers again serves the very next request.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from cbgate.errors import ServiceUnavailable
from cbgate.limits.base import NO_TICKET, EnvLimits, QuotaBook, Scope, UsageSource, refusal

log = logging.getLogger("cbgate.limits")

# KEYS[1] is this replica's marker, then four per scope (slots, rpm log, tpm counter, quota counter);
# ARGV: now, lease, slot, cost, window end, then four limits per scope (-1: none). Every scope is checked
# before any is charged, so a request the key's limits refuse costs its environment nothing.
ADMIT = """
local now, lease, slot = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local cost, window_end = tonumber(ARGV[4]), tonumber(ARGV[5])
local n = (#KEYS - 1) / 4
for i = 1, n do
  if tonumber(ARGV[5 + 4 * (i - 1) + 1]) >= 0 and redis.call('EXISTS', KEYS[1]) == 0 then return {6, 0, i} end
end
for i = 1, n do
  local k, a = 1 + 4 * (i - 1), 5 + 4 * (i - 1)
  local conc, rpm, tpm, quota = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if quota >= 0 and redis.call('EXISTS', KEYS[k + 4]) == 0 then return {5, 0, i} end
  if conc >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', now)
    if redis.call('ZCARD', KEYS[k + 1]) >= conc then return {1, 0, i} end
  end
  if rpm >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 2], '-inf', now - 60000)
    if redis.call('ZCARD', KEYS[k + 2]) >= rpm then
      local oldest = redis.call('ZRANGE', KEYS[k + 2], 0, 0, 'WITHSCORES')
      return {2, tonumber(oldest[2]) + 60000 - now, i}
    end
  end
  local tpm_used = tonumber(redis.call('GET', KEYS[k + 3]) or '0')
  if tpm >= 0 and tpm_used > 0 and tpm_used + cost > tpm then return {3, window_end - now, i} end
  local quota_used = tonumber(redis.call('GET', KEYS[k + 4]) or '0')
  if quota >= 0 and quota_used + cost > quota then return {4, quota_used, i} end
end
for i = 1, n do
  local k, a = 1 + 4 * (i - 1), 5 + 4 * (i - 1)
  if tonumber(ARGV[a + 1]) >= 0 then redis.call('ZADD', KEYS[k + 1], now + lease, slot) end
  if tonumber(ARGV[a + 2]) >= 0 then
    redis.call('ZADD', KEYS[k + 2], now, slot)
    redis.call('PEXPIRE', KEYS[k + 2], 61000)
  end
  redis.call('INCRBY', KEYS[k + 3], cost)
  redis.call('PEXPIRE', KEYS[k + 3], 120000)
  redis.call('INCRBY', KEYS[k + 4], cost)
end
return {0, 0, 0}
"""

# Free the slot and settle, for each scope (KEYS: slots, tpm, quota per scope): tokens per minute only while
# its window lives, the quota always.
FINISH = """
local delta = tonumber(ARGV[2])
for i = 0, #KEYS / 3 - 1 do
  redis.call('ZREM', KEYS[3 * i + 1], ARGV[1])
  if delta ~= 0 then
    if redis.call('EXISTS', KEYS[3 * i + 2]) == 1 then redis.call('INCRBY', KEYS[3 * i + 2], delta) end
    redis.call('INCRBY', KEYS[3 * i + 3], delta)
  end
end
return 0
"""

# Quota counters only move up to the ledger here; settlements bring them down.
RAISE = """
for i, key in ipairs(KEYS) do
  local floor = tonumber(ARGV[i])
  if tonumber(redis.call('GET', key) or '-1') < floor then redis.call('SET', key, floor) end
end
return 0
"""

MARKER_TTL_MS = 3600 * 1000  # a replica's marker outlives any pause; when it expires, leases are re-added
COUNTER_MISSING, LEASES_LOST = 5, 6
REFUSALS = {1: "concurrency", 2: "rpm", 3: "tpm", 4: "quota"}


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisTicket:
    __slots__ = ("limiter", "keys", "slot", "cost", "accounts", "leases", "done")

    def __init__(self, limiter: RedisLimiter, keys: tuple[str, ...], slot: str, cost: int, accounts: tuple[str, ...],
                 leases: tuple[str, ...]):
        self.limiter, self.keys, self.slot, self.cost = limiter, keys, slot, cost
        self.accounts = accounts  # the quota accounts charged (the env, and the key when it has limits)
        self.leases = leases  # the slot sets holding this request's lease (scopes with a concurrency limit)
        self.done = False

    def finish(self, used_tokens: int) -> None:
        if not self.done:
            self.done = True
            self.limiter._finish(self, used_tokens - self.cost)


class RedisLimiter:
    def __init__(self, url: str, prefix: str = "cbgate", lease: float = 6.0, fail_open: bool = True,
                 client: aioredis.Redis | None = None, usage_source: UsageSource | None = None,
                 reconcile_interval: float = 60.0):
        # A send on a connection Redis closed (it restarted) fails at once and is retried on a new one;
        # a timeout is not retried (the script may have run), and an idle connection is pinged first.
        self.redis = client or aioredis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0, health_check_interval=2,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)))
        self.prefix = prefix
        self.lease_ms = int(lease * 1000)
        self.fail_open = fail_open
        self.let_through = 0  # admissions the rate limits could not check and let pass (fail-open)
        self.running: dict[str, RedisTicket] = {}  # slot id -> ticket whose lease this replica refreshes
        self._pending: set[asyncio.Task] = set()
        self._admit = self.redis.register_script(ADMIT)
        self._settle = self.redis.register_script(FINISH)
        self._raise = self.redis.register_script(RAISE)
        self._refresher: asyncio.Task | None = None
        self._reconciler: asyncio.Task | None = None
        self._slot_base = os.urandom(6).hex()
        self._slot_seq = 0
        self.marker = f"{prefix}:replica:{self._slot_base}"  # gone from Redis = this replica's leases are
        self.quota = QuotaBook(usage_source, self._raise_counters, reconcile_interval)
        self.leases_readded = 0  # times Redis was found to have lost this replica's leases

    async def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh_leases())
        self._reconciler = asyncio.create_task(self.quota.run())

    async def close(self) -> None:
        for task in (self._refresher, self._reconciler):
            if task:
                task.cancel()
        for ticket in list(self.running.values()):
            ticket.finish(ticket.cost)
        await asyncio.gather(*self._pending, return_exceptions=True)
        await self.redis.aclose()

    async def _raise_counters(self, floors: dict[str, int]) -> None:
        keys = [f"{self.prefix}:quota:{env_id}" for env_id in floors]
        await self._raise(keys=keys, args=list(floors.values()))

    async def _readd_leases(self) -> None:
        """Redis lost this replica's state (it restarted empty): put the running requests' leases back
        before anything else is admitted, then the marker that says they are there."""
        expiry = int(time.time() * 1000) + self.lease_ms
        async with self.redis.pipeline(transaction=False) as pipe:
            for ticket in list(self.running.values()):
                for lease in ticket.leases:
                    pipe.zadd(lease, {ticket.slot: expiry})
            pipe.set(self.marker, 1, px=MARKER_TTL_MS)
            await pipe.execute()
        self.leases_readded += 1

    async def admit(self, scope: str, env_id: str, limits: EnvLimits, cost: int, also: tuple[Scope, ...] = ()):
        scopes = (Scope(scope, env_id, limits), *also)
        try:
            for s in scopes:
                if self.quota.seen.get(s.account) != s.limits.token_quota:
                    await self.quota.ensure(s.account, s.limits.token_quota)
            for _ in range(3):
                verdict, detail, which, ticket = await self._try_admit(scopes, cost)
                if verdict == LEASES_LOST:
                    await self._readd_leases()
                elif verdict == COUNTER_MISSING:
                    await self.quota.reconcile([scopes[which - 1].account])
                else:
                    break
        except (RedisError, OSError) as exc:
            return self._unanswered(scopes, exc)
        except Exception as exc:  # the ledger did not answer a reconciliation: the quota fails closed
            log.warning("could not reconcile the quota counters of %s: %s", env_id, exc)
            raise ServiceUnavailable("the gateway cannot check this environment's token quota; try again shortly",
                                     retry_after=5) from None
        if verdict in (LEASES_LOST, COUNTER_MISSING):
            raise ServiceUnavailable("the gateway cannot check this environment's limits; try again shortly",
                                     retry_after=5)
        if verdict:
            kind = REFUSALS[verdict]
            raise refusal(kind, scopes[which - 1], detail / 1000 if kind in ("rpm", "tpm") else detail)
        # always, as the script always charges the counters and `_finish` always releases (a request
        # admitted before a quota was set must not release another's reservation)
        for account in ticket.accounts:
            self.quota.reserve(account, cost)
        if ticket.leases:
            self.running[ticket.slot] = ticket
        return ticket

    async def _try_admit(self, scopes: tuple[Scope, ...], cost: int):
        p = self.prefix
        now = time.time()
        window = int(now // 60)
        keys, args = [self.marker], []
        for s in scopes:
            keys += [f"{p}:slots:{s.name}", f"{p}:rpm:{s.name}", f"{p}:tpm:{s.name}:{window}", f"{p}:quota:{s.account}"]
            args += [_limit(s.limits.concurrency), _limit(s.limits.rpm), _limit(s.limits.tpm),
                     _limit(s.limits.token_quota)]
        self._slot_seq += 1
        slot = f"{self._slot_base}:{self._slot_seq}"
        verdict, detail, which = await self._admit(keys=keys, args=(
            int(now * 1000), self.lease_ms, slot, cost, (window + 1) * 60000, *args))
        ticket = None
        if verdict == 0:
            settle = tuple(k for i in range(len(scopes)) for k in (keys[1 + 4 * i], keys[3 + 4 * i], keys[4 + 4 * i]))
            leases = tuple(keys[1 + 4 * i] for i, s in enumerate(scopes) if s.limits.concurrency is not None)
            ticket = RedisTicket(self, settle, slot, cost, tuple(s.account for s in scopes), leases)
        return verdict, detail, which, ticket

    def _unanswered(self, scopes: tuple[Scope, ...], exc: BaseException):
        """Redis did not answer: a quota fails closed; rate limits as the operator chose."""
        if any(s.limits.token_quota is not None for s in scopes) or not self.fail_open:
            log.warning("limiter store unreachable, refusing: %s", exc)
            raise ServiceUnavailable("the gateway cannot check this environment's limits; try again shortly",
                                     retry_after=5)
        self.let_through += 1
        if self.let_through == 1 or self.let_through % 1000 == 0:
            log.warning("limiter store unreachable, letting requests through (%d so far): %s",
                        self.let_through, exc)
        return NO_TICKET

    def _finish(self, ticket: RedisTicket, delta: int) -> None:
        self.running.pop(ticket.slot, None)
        for account in ticket.accounts:
            self.quota.release(account, ticket.cost)
        task = asyncio.get_running_loop().create_task(self._settle_now(ticket, delta))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle_now(self, ticket: RedisTicket, delta: int) -> None:
        try:
            await self._settle(keys=ticket.keys, args=(ticket.slot, delta))
        except (RedisError, OSError) as exc:  # the lease expires by itself; the quota keeps the reservation
            log.warning("could not settle request slot %s: %s", ticket.slot, exc)

    async def _refresh_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            if not self.running:
                continue
            expiry = int(time.time() * 1000) + self.lease_ms
            refreshed = list(self.running.values())
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for ticket in refreshed:  # re-added if Redis lost it (restarted empty)
                        for lease in ticket.leases:
                            pipe.zadd(lease, {ticket.slot: expiry})
                    pipe.set(self.marker, 1, px=MARKER_TTL_MS)
                    await pipe.execute()
                    # a request that ended while the refresh was on its way must not keep a slot
                    for ticket in refreshed:
                        if ticket.slot not in self.running:
                            for lease in ticket.leases:
                                pipe.zrem(lease, ticket.slot)
                    if len(pipe):
                        await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("could not refresh request leases: %s", exc)
