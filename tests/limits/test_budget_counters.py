"""The one contract both budget counters keep (in process, and in Redis through its scripts): a request is
charged under all its budgets or none, a spent budget refuses even a free request, a settlement moves the
reservation to what was really spent, and a counter is rebuilt from the ledger when it is first used and
when Redis lost it."""
from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from cbgate.limits.budget_memory import MemoryBudgets
from cbgate.limits.budget_redis import RedisBudgets
from cbgate.limits.budgets import Charge, Counter, Over
from tests.support.redis_server import REDIS_URL

ENV = Counter("bud-env:CNY:0", "env-a", None, "CNY", 0.0, None)
KEY = Counter("bud-key:tokens:0", "env-a", "key-1", "tokens", 0.0, None)


class Ledger:
    """What the ledger says each counter spent (the spend source), and how often it was asked."""

    def __init__(self, spent: dict[str, int] | None = None):
        self.spent = spent or {}
        self.asked: list[str] = []

    async def __call__(self, counters: list[Counter]) -> dict[str, int]:
        self.asked += [c.key for c in counters]
        return {c.key: self.spent.get(c.key, 0) for c in counters}


@pytest.fixture(params=["memory", "redis"])
def make(request, prefix):
    made = []

    def build(ledger: Ledger):
        if request.param == "memory":
            counter = MemoryBudgets(ledger)
        else:
            counter = RedisBudgets(aioredis.from_url(REDIS_URL), prefix, ledger)
        made.append(counter)
        return counter
    yield build


async def settle(ticket, spent: tuple[int, ...], counter) -> None:
    ticket.finish(spent)
    if isinstance(counter, RedisBudgets):
        await asyncio.gather(*counter._pending)


def test_all_or_none_spent_refuses_free_requests_and_settles_to_the_real_spend(make):
    async def scenario():
        ledger = Ledger({ENV.key: 900})
        counter = make(ledger)
        ticket = await counter.admit((Charge(ENV, 1000, 50), Charge(KEY, 100, 60)))
        assert sorted(ledger.asked) == sorted([ENV.key, KEY.key])  # rebuilt before first use
        assert await counter.peek([ENV, KEY]) == {ENV.key: (900, 50), KEY.key: (0, 60)}
        with pytest.raises(Over) as over:  # the key's budget has no room: the env's is not charged
            await counter.admit((Charge(ENV, 1000, 10), Charge(KEY, 100, 50)))
        assert (over.value.index, over.value.used) == (1, 60)
        assert await counter.peek([ENV]) == {ENV.key: (900, 50)}
        await settle(ticket, (30, 40), counter)
        assert await counter.peek([ENV, KEY]) == {ENV.key: (930, 0), KEY.key: (40, 0)}
        ticket.finish((999, 999))  # once only
        assert await counter.peek([ENV]) == {ENV.key: (930, 0)}
        last = await counter.admit((Charge(ENV, 1000, 70),))
        await settle(last, (70,), counter)
        with pytest.raises(Over):  # spent: even a request that costs nothing is refused
            await counter.admit((Charge(ENV, 1000, 0),))
    asyncio.run(scenario())


def test_a_counter_redis_lost_is_rebuilt_from_the_ledger(prefix):
    async def scenario():
        ledger = Ledger({ENV.key: 400})
        client = aioredis.from_url(REDIS_URL)
        counter = RedisBudgets(client, prefix, ledger)
        running = await counter.admit((Charge(ENV, 1000, 100),))
        await client.delete(f"{prefix}:budget:{ENV.key}")  # as a Redis restarted empty would have it
        ledger.spent[ENV.key] = 450  # another replica's request landed meanwhile
        await counter.admit((Charge(ENV, 1000, 10),))
        assert counter.rebuilt == 1
        # the ledger's spend, this replica's running reservation and the new one
        assert await counter.peek([ENV]) == {ENV.key: (450, 110)}
        await settle(running, (90,), counter)
        assert await counter.peek([ENV]) == {ENV.key: (540, 10)}
        await client.aclose()
    asyncio.run(scenario())


def test_a_dead_replicas_reservations_are_dropped_and_a_live_ones_kept(prefix):
    async def scenario():
        client = aioredis.from_url(REDIS_URL)
        dead, live, other = (RedisBudgets(client, prefix, Ledger()) for _ in range(3))
        await dead.admit((Charge(ENV, 1000, 600),))  # then killed: it never settles
        await live.admit((Charge(ENV, 1000, 300),))
        with pytest.raises(Over):
            await other.admit((Charge(ENV, 1000, 200),))
        assert await client.pttl(dead.alive + dead.replica) > 0  # kept alive for a while by its admissions
        await client.delete(dead.alive + dead.replica)  # as its liveness key expires, ALIVE_MS after its death
        await other.admit((Charge(ENV, 1000, 200),))
        assert await other.peek([ENV]) == {ENV.key: (0, 500)}  # the live replica's 300 and this one's 200
        await client.aclose()
    asyncio.run(scenario())
