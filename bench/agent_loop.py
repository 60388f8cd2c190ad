"""What the agent loop (core/agent_loop.py) adds to a run of an agent without MCP services, by itself: a stub
model stream drained directly and through AgentLoop (RunTools with no service, the round loop, aclose),
alternating, best of many. Prints µs per run (one chunk) and per chunk (2,000 chunks).
`PYTHONPATH=src:. .venv/bin/python -m bench.agent_loop`."""
from __future__ import annotations

import asyncio
import time
import types

from cbgate.core.agent_loop import AgentLoop
from cbgate.core.agent_tools import RunTools
from cbgate.protocol.agent_request import AgentRun

CHUNK = {"id": "c", "choices": [{"index": 0, "delta": {"content": "tok"}, "finish_reason": None}]}
WHO = types.SimpleNamespace(env_id="env", key_id="key")
AGENT = types.SimpleNamespace(id="agent", group_name="group", mcp_services=[])


class StubStream:
    def __init__(self, chunks: int):
        self.chunks = chunks
        self.meter = types.SimpleNamespace(run_ends=True, cut=None)

    async def __aiter__(self):
        for _ in range(self.chunks):
            yield [CHUNK]  # a model stream yields batches: here, one chunk each

    async def aclose(self) -> None:
        pass


class StubService:
    def __init__(self, chunks: int):
        self.chunks = chunks
        self.metering = types.SimpleNamespace(metrics=types.SimpleNamespace(agent_run=lambda *args: None))

    async def open_stream(self, *args) -> StubStream:
        return StubStream(self.chunks)


async def direct(chunks: int) -> None:
    async for _ in StubStream(chunks):
        pass


async def looped(chunks: int) -> None:
    tools = RunTools(None, WHO, "rid")
    await tools.open([], set())
    loop = await AgentLoop(StubService(chunks), None, tools, WHO, AGENT, AgentRun("ag-ui", "t", "r", []), None,
                           "rid").start()
    async for _ in loop:
        pass
    await loop.aclose()


async def best(run, chunks: int, tries: int) -> float:
    fastest = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        await run(chunks)
        fastest = min(fastest, time.perf_counter() - started)
    return fastest * 1e6


async def main() -> None:
    for chunks, tries in ((1, 3000), (2000, 30)):
        plain, loop = [], []
        for _ in range(3):
            plain.append(await best(direct, chunks, tries))
            loop.append(await best(looped, chunks, tries))
        added = min(loop) - min(plain)
        print(f"{chunks} chunk(s): direct {min(plain):.1f} µs, through the loop {min(loop):.1f} µs: "
              + (f"+{added:.1f} µs a run" if chunks == 1 else f"+{added / chunks:.3f} µs a chunk"))


if __name__ == "__main__":
    asyncio.run(main())
