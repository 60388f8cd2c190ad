"""The engine's queue, without an engine: slots, the bound, turns between environments, callers leaving."""
import asyncio

import pytest

from cbgate.errors import ConcurrencyExceeded
from cbgate.providers.local.fair_queue import FairQueue


def run(coro):
    return asyncio.run(coro)


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


async def queued(queue: FairQueue, tenant: str, order: list[str], name: str) -> asyncio.Task:
    async def take():
        await queue.acquire(tenant)
        order.append(name)
    task = asyncio.create_task(take())
    await settle()
    return task


def test_slots_are_granted_at_once_then_requests_wait_and_a_full_queue_refuses():
    async def scenario():
        queue = FairQueue(slots=2, limit=2, per_tenant=2)
        await queue.acquire("a")
        await queue.acquire("a")
        assert (queue.busy, queue.waiting) == (2, 0)
        order: list[str] = []
        waiters = [await queued(queue, "a", order, f"a{i}") for i in range(2)]
        assert (queue.busy, queue.waiting, order) == (2, 2, [])
        with pytest.raises(ConcurrencyExceeded):
            await queue.acquire("b")
        queue.release()
        await settle()
        assert order == ["a0"] and (queue.busy, queue.waiting) == (2, 1)
        queue.release()
        queue.release()
        await asyncio.gather(*waiters)
        assert order == ["a0", "a1"] and (queue.busy, queue.waiting) == (1, 0)
    run(scenario())


def test_freed_slots_go_to_the_environments_in_turn():
    async def scenario():
        queue = FairQueue(slots=1, limit=10, per_tenant=10)
        await queue.acquire("busy")
        order: list[str] = []
        tasks = [await queued(queue, "a", order, f"a{i}") for i in range(4)]  # a floods the queue first
        tasks += [await queued(queue, "b", order, f"b{i}") for i in range(2)]
        tasks += [await queued(queue, "c", order, "c0")]
        for _ in range(7):
            queue.release()
            await settle()
        await asyncio.gather(*tasks)
        assert order == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]
    run(scenario())


def test_one_environment_cannot_fill_the_whole_queue():
    async def scenario():
        queue = FairQueue(slots=1, limit=4)  # each environment may hold half of it
        await queue.acquire("a")
        order: list[str] = []
        tasks = [await queued(queue, "a", order, f"a{i}") for i in range(2)]
        with pytest.raises(ConcurrencyExceeded):
            await queue.acquire("a")
        tasks.append(await queued(queue, "b", order, "b0"))  # another environment still gets in line
        for _ in range(3):
            queue.release()
            await settle()
        await asyncio.gather(*tasks)
        assert order == ["a0", "b0", "a1"]
    run(scenario())


def test_a_caller_that_leaves_the_line_gives_up_its_place_and_slots_are_not_lost():
    async def scenario():
        queue = FairQueue(slots=1, limit=4, per_tenant=4)
        await queue.acquire("a")
        order: list[str] = []
        leaver = await queued(queue, "a", order, "leaver")
        stayer = await queued(queue, "b", order, "stayer")
        leaver.cancel()
        await settle()
        assert queue.waiting == 1
        queue.release()
        await stayer
        assert order == ["stayer"] and (queue.busy, queue.waiting) == (1, 0)
        # a slot handed to a caller in the same moment it leaves passes on to the next one
        late = await queued(queue, "a", order, "late")
        after = await queued(queue, "c", order, "after")
        queue.release()
        late.cancel()
        await settle()
        await after
        assert order == ["stayer", "after"] and (queue.busy, queue.waiting) == (1, 0)
        queue.release()
        assert queue.busy == 0
    run(scenario())


def test_the_slot_context_releases_however_the_request_ends():
    async def scenario():
        queue = FairQueue(slots=1, limit=0)
        with pytest.raises(RuntimeError):
            async with queue.slot("a"):
                assert queue.busy == 1
                with pytest.raises(ConcurrencyExceeded):  # limit 0: nobody waits
                    await queue.acquire("b")
                raise RuntimeError("the engine failed")
        assert queue.busy == 0
    run(scenario())
