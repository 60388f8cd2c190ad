"""Quota counters meet the ledger: when a quota is first seen or changed, when Redis lost a counter or
this replica's leases, and every reconcile interval; counters only move up to the ledger."""
import asyncio

import pytest

from cbgate.errors import ConcurrencyExceeded, ServiceUnavailable, TokenQuotaExceeded
from cbgate.limits.base import EnvLimits
from cbgate.limits.memory import MemoryLimiter
from cbgate.limits.redis import RedisLimiter
from tests.support.redis_server import REDIS_URL, delete_prefix


class Ledger:
    """What the ledger says each env used; counts the times it was asked."""

    def __init__(self, used: dict[str, int]):
        self.used = used
        self.asked = 0

    async def __call__(self, env_ids: list[str]) -> dict[str, int]:
        self.asked += 1
        return {env: self.used.get(env, 0) for env in env_ids}


def test_a_quota_first_seen_or_changed_starts_from_the_ledger():
    async def scenario():
        ledger = Ledger({"env": 900})
        limiter = MemoryLimiter(ledger)
        await limiter.admit("env", "env", EnvLimits(concurrency=None), 50)  # no quota: the ledger is not asked
        assert ledger.asked == 0
        with pytest.raises(TokenQuotaExceeded):  # 900 used + 50 reserved before + 100 > 1,000
            await limiter.admit("env", "env", EnvLimits(concurrency=None, token_quota=1000), 100)
        assert ledger.asked == 1
        ledger.used["env"] = 950  # another replica's traffic, seen when the quota changes
        await limiter.admit("env", "env", EnvLimits(concurrency=None, token_quota=1100), 100)
        assert ledger.asked == 2 and limiter.quota_used["env"] == 950 + 50 + 100
    asyncio.run(scenario())


def test_counters_are_raised_to_the_ledger_periodically_and_never_lowered():
    async def scenario():
        ledger = Ledger({"env": 100})
        limiter = MemoryLimiter(ledger, reconcile_interval=0.05)
        await limiter.start()
        limits = EnvLimits(concurrency=None, token_quota=1000)
        (await limiter.admit("env", "env", limits, 10)).finish(10)
        ledger.used["env"] = 700  # other replicas spent meanwhile
        for _ in range(200):
            if limiter.quota_used["env"] >= 700:
                break
            await asyncio.sleep(0.01)
        assert limiter.quota_used["env"] == 700
        ledger.used["env"] = 10  # a ledger that lags never lowers a counter
        await limiter.quota.reconcile(["env"])
        assert limiter.quota_used["env"] == 700
        await limiter.close()
    asyncio.run(scenario())


def test_an_unreadable_ledger_fails_the_quota_closed():
    async def broken(env_ids):
        raise OSError("database unreachable")

    async def scenario():
        limiter = MemoryLimiter(broken)
        with pytest.raises(ServiceUnavailable):
            await limiter.admit("env", "env", EnvLimits(concurrency=None, token_quota=1000), 10)
        await limiter.admit("env", "env", EnvLimits(concurrency=None), 10)  # no quota, no ledger needed
    asyncio.run(scenario())


def test_redis_that_lost_its_keys_gets_counters_and_leases_back_before_admitting(prefix):
    async def scenario():
        ledger = Ledger({"env": 800})
        limiter = RedisLimiter(REDIS_URL, prefix, usage_source=ledger)
        limits = EnvLimits(concurrency=2, token_quota=1000)
        running = [await limiter.admit("env", "env", limits, 50) for _ in range(2)]
        with pytest.raises(ConcurrencyExceeded):
            await limiter.admit("env", "env", limits, 50)
        readded = limiter.leases_readded
        delete_prefix(prefix)  # Redis restarted empty: counters, leases and this replica's marker gone
        with pytest.raises(ConcurrencyExceeded):  # the two running requests' leases came back first
            await limiter.admit("env", "env", limits, 50)
        assert limiter.leases_readded == readded + 1
        assert int(await limiter.redis.get(f"{prefix}:quota:env")) == 800 + 2 * 50  # ledger + reservations
        for ticket in running:
            ticket.finish(50)
        await asyncio.gather(*limiter._pending)
        await limiter.admit("env", "env", limits, 50)
        await limiter.close()
    asyncio.run(scenario())


def test_a_request_admitted_before_the_quota_was_set_releases_only_its_own_reservation(prefix):
    async def scenario():
        ledger = Ledger({})
        limiter = RedisLimiter(REDIS_URL, prefix, usage_source=ledger)
        early = await limiter.admit("env", "env", EnvLimits(rpm=100), 500)  # no quota yet
        limits = EnvLimits(rpm=100, token_quota=1000)  # the operator sets one while it runs
        await limiter.admit("env", "env", limits, 100)  # still running at the end
        early.finish(500)
        await asyncio.gather(*limiter._pending)
        ledger.used["env"] = 500  # the early request is billed
        delete_prefix(prefix)  # Redis restarted empty: the counter is rebuilt from ledger + reservations
        with pytest.raises(TokenQuotaExceeded):  # 500 used + 100 reserved + 450 > 1,000
            await limiter.admit("env", "env", limits, 450)
        assert int(await limiter.redis.get(f"{prefix}:quota:env")) == 500 + 100
        await limiter.close()
    asyncio.run(scenario())
