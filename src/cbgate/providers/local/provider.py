"""The embedded engine as a provider adapter."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

from cbgate.errors import ModelParamInvalid
from cbgate.providers.base import Capabilities, Completion, ModelCall, StreamOutcome
from cbgate.providers.local.engine import Job, LocalEngine, Sampling


class LocalProvider:
    capabilities = Capabilities()

    def __init__(self, name: str, engine: LocalEngine, *, temperature: float = 0.7,
                 top_p: float = 0.95, max_tokens: int = 512):
        self.name = name
        self.engine = engine
        self.defaults = (temperature, top_p, max_tokens)

    def _job(self, call: ModelCall) -> Job:
        req = call.request
        if req.n not in (None, 1):
            raise ModelParamInvalid("invalid parameter `n`: the embedded engine generates one choice")
        if req.has_images:
            raise ModelParamInvalid("invalid parameter `messages`: this model does not read images")
        temperature, top_p, max_tokens = self.defaults
        sampling = Sampling(
            temperature=req.temperature if req.temperature is not None else temperature,
            top_p=req.top_p if req.top_p is not None else top_p,
            max_tokens=req.max_tokens or max_tokens,
            stop=req.stop,
            seed=req.seed,
        )
        job = Job(req.messages, sampling, asyncio.get_running_loop())
        self.engine.submit(job)
        return job

    async def _events(self, job: Job, outcome: StreamOutcome) -> AsyncIterator[tuple]:
        try:
            while True:
                event = await job.events.get()
                kind = event[0]
                if kind == "error":
                    raise event[1]
                if kind == "start":
                    outcome.usage.prompt_tokens = event[1]
                elif kind == "end":
                    outcome.finish_reason, outcome.usage.completion_tokens = event[1], event[2]
                    return
                yield event
        finally:
            job.cancel.set()  # a cancelled caller (client gone) stops the engine at the next token

    async def complete(self, call: ModelCall) -> Completion:
        outcome = StreamOutcome()
        parts = [e[1] async for e in self._events(self._job(call), outcome) if e[0] == "text"]
        message = {"role": "assistant", "content": "".join(parts)}
        return Completion(call.chunks.completion(message, outcome.finish_reason, outcome.usage), outcome.usage)

    async def stream(self, call: ModelCall, outcome: StreamOutcome) -> AsyncIterator[dict]:
        job = self._job(call)
        try:
            async for kind, *rest in self._events(job, outcome):
                if kind == "start":
                    yield call.chunks.chunk({"role": "assistant", "content": ""})
                else:
                    outcome.mark_token()
                    yield call.chunks.chunk({"content": rest[0]})
        finally:
            await _settle_cancelled(job, outcome)
        yield call.chunks.chunk({}, outcome.finish_reason)

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.close)


async def _settle_cancelled(job: Job, outcome: StreamOutcome, wait: float = 2.0) -> None:
    """A stream closed before its end event (client gone): stop the engine, wait the token it may be
    computing, and bill every token it generated."""
    if outcome.finish_reason is not None:  # the end event came: its counts are exact
        return
    job.cancel.set()
    deadline = asyncio.get_running_loop().time() + wait
    while job.started and not job.finished.is_set() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
    outcome.usage.completion_tokens = max(outcome.usage.completion_tokens, job.produced)
