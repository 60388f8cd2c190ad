"""Redis limiter: every replica admits through one atomic Lua script (one round trip per admission).

Concurrency slots are leases, a ZSET of slot ids scored by expiry: the script prunes expired ones
before counting, and each replica refreshes the leases of its running requests every `lease/3`, so a
replica killed with `kill -9` stops refreshing and its slots free themselves within `lease` seconds.
Requests per minute are a sliding log (ZSET of admission times); tokens per minute a counter per
minute; the quota a counter of tokens used or reserved, settled to the real usage when a request ends.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cbgate.errors import ConcurrencyExceeded, RateLimitExceeded, ServiceUnavailable, TokenQuotaExceeded
from cbgate.limits.base import NO_TICKET, EnvLimits

log = logging.getLogger("cbgate.limits")

ADMIT = """
local now, lease, slot = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local conc, rpm, tpm, quota = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local cost, window_end = tonumber(ARGV[8]), tonumber(ARGV[9])
if conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= conc then return {1, 0} end
end
if rpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[2]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {2, tonumber(oldest[2]) + 60000 - now}
  end
end
local tpm_used = tonumber(redis.call('GET', KEYS[3]) or '0')
if tpm >= 0 and tpm_used > 0 and tpm_used + cost > tpm then return {3, window_end - now} end
local quota_used = tonumber(redis.call('GET', KEYS[4]) or '0')
if quota >= 0 and quota_used + cost > quota then return {4, quota_used} end
if conc >= 0 then redis.call('ZADD', KEYS[1], now + lease, slot) end
if rpm >= 0 then
  redis.call('ZADD', KEYS[2], now, slot)
  redis.call('PEXPIRE', KEYS[2], 61000)
end
redis.call('INCRBY', KEYS[3], cost)
redis.call('PEXPIRE', KEYS[3], 120000)
redis.call('INCRBY', KEYS[4], cost)
return {0, 0}
"""

# Free the slot and settle: tokens per minute only while its window lives, the quota always.
FINISH = """
redis.call('ZREM', KEYS[1], ARGV[1])
local delta = tonumber(ARGV[2])
if delta ~= 0 then
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('INCRBY', KEYS[2], delta) end
  redis.call('INCRBY', KEYS[3], delta)
end
return 0
"""


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisTicket:
    __slots__ = ("limiter", "keys", "slot", "cost", "done")

    def __init__(self, limiter: RedisLimiter, keys: tuple[str, str, str], slot: str, cost: int):
        self.limiter, self.keys, self.slot, self.cost = limiter, keys, slot, cost
        self.done = False

    def finish(self, used_tokens: int) -> None:
        if not self.done:
            self.done = True
            self.limiter._finish(self, used_tokens - self.cost)


class RedisLimiter:
    def __init__(self, url: str, prefix: str = "cbgate", lease: float = 6.0, fail_open: bool = True,
                 client: aioredis.Redis | None = None):
        self.redis = client or aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.prefix = prefix
        self.lease_ms = int(lease * 1000)
        self.fail_open = fail_open
        self.let_through = 0  # admissions the rate limits could not check and let pass (fail-open)
        self.running: dict[str, RedisTicket] = {}  # slot id -> ticket whose lease this replica refreshes
        self._pending: set[asyncio.Task] = set()
        self._admit = self.redis.register_script(ADMIT)
        self._settle = self.redis.register_script(FINISH)
        self._refresher: asyncio.Task | None = None
        self._slot_base = os.urandom(6).hex()
        self._slot_seq = 0

    async def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh_leases())

    async def close(self) -> None:
        if self._refresher:
            self._refresher.cancel()
        for ticket in list(self.running.values()):
            ticket.finish(ticket.cost)
        await asyncio.gather(*self._pending, return_exceptions=True)
        await self.redis.aclose()

    async def seed_quota(self, used: dict[str, int]) -> None:
        """Start the quota counters from the ledger where Redis has none (a new or emptied Redis); a
        counter that exists is ahead of the ledger (it holds reservations) and is kept."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for env_id, tokens in used.items():
                pipe.set(f"{self.prefix}:quota:{env_id}", tokens, nx=True)
            await pipe.execute()

    async def admit(self, scope: str, env_id: str, limits: EnvLimits, cost: int):
        p = self.prefix
        now = time.time()
        window = int(now // 60)
        keys = (f"{p}:slots:{scope}", f"{p}:rpm:{scope}", f"{p}:tpm:{scope}:{window}", f"{p}:quota:{env_id}")
        self._slot_seq += 1
        slot = f"{self._slot_base}:{self._slot_seq}"
        now_ms = int(now * 1000)
        try:
            verdict, detail = await self._admit(keys=keys, args=(
                now_ms, self.lease_ms, slot, _limit(limits.concurrency), _limit(limits.rpm), _limit(limits.tpm),
                _limit(limits.token_quota), cost, (window + 1) * 60000))
        except (RedisError, OSError) as exc:
            return self._unanswered(limits, exc)
        if verdict == 1:
            raise ConcurrencyExceeded(f"more than {limits.concurrency} concurrent requests in this environment")
        if verdict == 2:
            raise RateLimitExceeded(f"more than {limits.rpm} requests per minute", retry_after=detail / 1000)
        if verdict == 3:
            raise RateLimitExceeded(f"more than {limits.tpm} tokens per minute", retry_after=detail / 1000)
        if verdict == 4:
            raise TokenQuotaExceeded("the environment's token quota is used up" if detail >= limits.token_quota
                                     else "the environment's token quota has too few tokens left for this request")
        ticket = RedisTicket(self, (keys[0], keys[2], keys[3]), slot, cost)
        if limits.concurrency is not None:
            self.running[slot] = ticket
        return ticket

    def _unanswered(self, limits: EnvLimits, exc: BaseException):
        """Redis did not answer: the quota fails closed; rate limits as the operator chose."""
        if limits.token_quota is not None or not self.fail_open:
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
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for ticket in list(self.running.values()):
                        pipe.zadd(ticket.keys[0], {ticket.slot: expiry}, xx=True)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("could not refresh request leases: %s", exc)
