"""The Redis limiter against the machine's real Redis: two limiter objects stand for two replicas."""
import asyncio
import socket

import pytest
import redis

from cbgate.errors import ConcurrencyExceeded, RateLimitExceeded, ServiceUnavailable, TokenQuotaExceeded
from cbgate.limits.base import NO_TICKET, EnvLimits
from cbgate.limits.redis import RedisLimiter
from tests.support.redis_server import REDIS_URL


def run(coro):
    return asyncio.run(coro)


def make(url_prefix: str, **kw) -> RedisLimiter:
    return RedisLimiter(REDIS_URL, url_prefix, **kw)


async def drain(*limiters: RedisLimiter) -> None:
    for limiter in limiters:
        await asyncio.gather(*limiter._pending)


def test_concurrency_is_shared_between_replicas_and_freed_on_finish(prefix):
    async def scenario():
        a, b = make(prefix), make(prefix)
        limits = EnvLimits(concurrency=3)
        tickets = [await a.admit("env", "env", limits, 10), await b.admit("env", "env", limits, 10),
                   await a.admit("env", "env", limits, 10)]
        with pytest.raises(ConcurrencyExceeded):
            await b.admit("env", "env", limits, 10)
        tickets[0].finish(5)
        tickets[0].finish(5)  # twice is once
        await drain(a)
        tickets.append(await b.admit("env", "env", limits, 10))
        with pytest.raises(ConcurrencyExceeded):
            await a.admit("env", "env", limits, 10)
        await a.close()
        await b.close()
    run(scenario())


async def admitted_once_free(limiter, limits: EnvLimits):
    """Admit as soon as a slot is free: waits on the limiter's state, within a generous ceiling."""
    async with asyncio.timeout(30):
        while True:
            try:
                return await limiter.admit("env", "env", limits, 1)
            except ConcurrencyExceeded:
                await asyncio.sleep(0.05)


def test_a_dead_replicas_slots_expire_while_a_live_ones_leases_are_refreshed(prefix):
    async def scenario():
        dead = make(prefix, lease=1.0)  # never started: nobody refreshes its leases, as after kill -9
        live = make(prefix, lease=1.0)
        await live.start()
        limits = EnvLimits(concurrency=2)
        await dead.admit("env", "env", limits, 1)
        held = await live.admit("env", "env", limits, 1)
        with pytest.raises(ConcurrencyExceeded):
            await live.admit("env", "env", limits, 1)
        first_expiry = await live.redis.zscore(held.keys[0], held.slot)
        async with asyncio.timeout(30):
            while await live.redis.zscore(held.keys[0], held.slot) == first_expiry:
                await asyncio.sleep(0.05)  # until the live replica refreshed its lease
        await admitted_once_free(live, limits)  # the dead one's slot expired...
        with pytest.raises(ConcurrencyExceeded):  # ...the live one's did not
            await live.admit("env", "env", limits, 1)
        live.running.clear()
        await live.close()
        await dead.redis.aclose()
    run(scenario())


def test_requests_per_minute_are_shared_and_say_when_to_retry(prefix):
    async def scenario():
        a, b = make(prefix), make(prefix)
        limits = EnvLimits(concurrency=None, rpm=4)
        for limiter in (a, b, a, b):
            (await limiter.admit("env", "env", limits, 1)).finish(1)
        with pytest.raises(RateLimitExceeded) as refused:
            await a.admit("env", "env", limits, 1)
        assert 54 < refused.value.retry_after <= 60
        await a.close()
        await b.close()
    run(scenario())


def test_tokens_per_minute_settle_to_the_real_usage(prefix):
    async def scenario():
        a = make(prefix)
        limits = EnvLimits(concurrency=None, tpm=1000)
        (await a.admit("env", "env", limits, 900)).finish(100)
        await drain(a)
        await a.admit("env", "env", limits, 800)  # 100 used + 800 fits
        with pytest.raises(RateLimitExceeded) as refused:
            await a.admit("env", "env", limits, 200)
        assert 0 < refused.value.retry_after <= 60
        a.running.clear()
        await a.close()
    run(scenario())


def test_concurrent_reservations_never_overspend_the_quota(prefix):
    async def scenario():
        replicas = [make(prefix) for _ in range(3)]
        limits = EnvLimits(concurrency=None, token_quota=1000)

        async def one(i):
            try:
                return await replicas[i % 3].admit("env", "env", limits, 100)
            except TokenQuotaExceeded:
                return None
        tickets = await asyncio.gather(*(one(i) for i in range(40)))
        admitted = [t for t in tickets if t is not None]
        assert len(admitted) == 10  # exactly what the quota holds, however the 40 interleaved
        for t in admitted:
            t.finish(30)  # each used less than it reserved: the rest goes back
        await drain(*replicas)
        assert int(redis.Redis().get(f"{prefix}:quota:env")) == 300
        more = [await replicas[0].admit("env", "env", limits, 100) for _ in range(7)]
        with pytest.raises(TokenQuotaExceeded):
            await replicas[1].admit("env", "env", limits, 100)
        for t in more:
            t.finish(100)
        for r in replicas:
            await r.close()
    run(scenario())


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_unreachable_redis_fails_open_for_rate_limits_and_closed_for_the_quota():
    async def scenario():
        url = f"redis://127.0.0.1:{dead_port()}/0"
        open_ = RedisLimiter(url, fail_open=True)
        closed = RedisLimiter(url, fail_open=False)
        assert await open_.admit("env", "env", EnvLimits(concurrency=5, rpm=10), 1) is NO_TICKET
        assert await open_.admit("env", "env", EnvLimits(concurrency=5, rpm=10), 1) is NO_TICKET
        assert open_.let_through == 2  # counted
        with pytest.raises(ServiceUnavailable):
            await open_.admit("env", "env", EnvLimits(concurrency=5, token_quota=1000), 1)
        with pytest.raises(ServiceUnavailable):
            await closed.admit("env", "env", EnvLimits(concurrency=5), 1)
        await open_.close()
        await closed.close()
    run(scenario())


def test_a_keys_scope_is_checked_with_its_envs_and_a_refusal_charges_neither(prefix):
    from cbgate.limits.base import Scope
    from cbgate.limits.memory import MemoryLimiter

    async def scenario(a, b):
        env, key = EnvLimits(concurrency=None, rpm=3), Scope("key/k1", "key:k1", EnvLimits(concurrency=1), "this API key")
        first = await a.admit("env", "env", env, 10, (key,))
        with pytest.raises(ConcurrencyExceeded, match="this API key"):
            await b.admit("env", "env", env, 10, (key,))
        first.finish(10)
        await drain(*(x for x in (a, b) if isinstance(x, RedisLimiter)))
        (await b.admit("env", "env", env, 10, (key,))).finish(10)  # the slot came back
        await a.admit("env", "env", env, 10)  # the env's third request: the refused one was not counted
        with pytest.raises(RateLimitExceeded):
            await a.admit("env", "env", env, 10)

    async def both():
        a, b = make(prefix), make(prefix)
        await scenario(a, b)
        await a.close()
        await b.close()
        memory = MemoryLimiter()
        await scenario(memory, memory)
    run(both())
