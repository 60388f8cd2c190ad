"""Stream writes are coalesced: what arrives together leaves in one write, nothing waits for more."""
import asyncio

import pytest

from cbgate.http import coalesce
from cbgate.http.coalesce import CoalescedChunks

MODEL = "gemma-3-270m"


def test_a_slow_stream_reaches_the_client_token_by_token(gateway):
    gateway.engine.script(token_delay=0.1)
    text = "abcdefghijklmnopqrstuvwxyz"  # "echo: " + 26 letters: 16 tokens, 1.6 s
    r = gateway.chat({"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": True},
                     stream=True)
    contents = 0
    for line in r.iter_lines():
        if line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
            contents += 1
            if contents == 3:
                break
    assert gateway.engine.generated() < 16  # the third token came while the engine was still generating
    r.close()


async def _stream(items, gate: asyncio.Event | None = None, pause_after: int | None = None, fail: Exception = None):
    for i, item in enumerate(items):
        if gate is not None and i == pause_after:
            await gate.wait()  # like an upstream read that has to wait for the network
        yield item
    if fail is not None:
        raise fail


def _run(coro):
    return asyncio.run(coro)


def test_events_that_arrive_together_leave_in_one_write():
    async def scenario():
        gate = asyncio.Event()
        chunks = CoalescedChunks(_stream([b"a", b"b", b"c", b"d"], gate, pause_after=3), lambda c: c + b";")
        writes = []
        async for batch in chunks.batches():
            writes.append(batch)
            gate.set()
        await chunks.aclose()
        return writes

    assert _run(scenario()) == [b"a;b;c;", b"d;"]


def test_a_failure_arrives_after_the_events_before_it():
    async def scenario():
        chunks = CoalescedChunks(_stream([b"a", b"b"], fail=ValueError("upstream broke")), lambda c: c)
        writes = []
        with pytest.raises(ValueError, match="upstream broke"):
            async for batch in chunks.batches():
                writes.append(batch)
        await chunks.aclose()
        return writes

    assert _run(scenario()) == [b"ab"]


def test_a_slow_client_stops_the_pump_and_closing_stops_the_stream():
    closed = []

    async def endless():
        try:
            while True:
                yield b"x"
        finally:
            closed.append(True)

    async def scenario():
        chunks = CoalescedChunks(endless(), lambda c: c)
        for _ in range(5):
            await asyncio.sleep(0)  # the writer is busy: the pump runs alone
        held = len(chunks.pending)
        await chunks.aclose()
        return held

    assert _run(scenario()) == coalesce.MAX_PENDING
    assert closed == [True]
