"""The embedded engine as a provider: a supervised llama-server child, spoken to through the same
OpenAI-compatible adapter as any upstream, behind the gateway's fair queue.

Every call streams from the engine (a non-streaming answer is assembled here), so whatever happens, the
tokens generated so far are known and billed: llama-server reports its exact counts with every token.
"""
from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator

import orjson

from cbgate.errors import ModelParamInvalid, ModelRequestFailed, ModelRequestTimeout
from cbgate.providers.base import TEXT_ONLY, Capabilities, Completion, Inputs, ModelCall, StreamOutcome
from cbgate.providers.local.child import EngineChild, EngineDied
from cbgate.providers.local.fair_queue import FairQueue
from cbgate.providers.local.messages import engine_messages, media_parts
from cbgate.providers.local.supervisor import EngineSupervisor
from cbgate.providers.openai_compat import OpenAICompatAdapter
from cbgate.providers.token_estimate import TokenEstimator
from cbgate.providers.upstream_http import Timeouts, UpstreamClient

# What the engine cannot do with a plain-text model; the model reads tool calls as text (messages.py).
DROPPED_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call", "n",
                  "max_completion_tokens", "user")
RATE_WINDOW = 10.0  # seconds over which the engine's tokens/s is measured


@dataclass(frozen=True)
class SamplingDefaults:
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512


@dataclass(frozen=True)
class EngineStats:
    name: str
    up: bool
    queue_depth: int  # requests waiting for a slot
    batch_size: int  # sequences in the engine now
    slots: int
    tokens_per_second: float
    generated_tokens: int
    restarts: int


class EngineProvider:
    capabilities = Capabilities()

    def __init__(self, name: str, supervisor: EngineSupervisor, queue: FairQueue, client: UpstreamClient,
                 estimator: TokenEstimator, defaults: SamplingDefaults | None = None,
                 timeouts: Timeouts | None = None, ready_timeout: float = 30.0, inputs: Inputs = TEXT_ONLY):
        self.name = name
        # text only unless the catalog declares more (a GGUF with its mmproj in `args`); a request with parts
        # it does not read is refused before it gets here (core/inputs.py)
        self.inputs = inputs
        self.supervisor = supervisor
        self.queue = queue
        self.client = client
        self.estimator = estimator
        self.defaults = defaults or SamplingDefaults()
        self.capabilities = Capabilities(default_max_tokens=self.defaults.max_tokens)
        self.timeouts = timeouts or Timeouts(connect=5.0, first_byte=120.0, idle=60.0, total=300.0)
        self.ready_timeout = ready_timeout  # how long a request waits for a restarting engine
        self.generated = 0
        self._recent: deque[tuple[float, int]] = deque()  # (time, tokens) of recently finished answers
        self._adapter: tuple[EngineChild, OpenAICompatAdapter] | None = None

    async def start(self) -> None:
        await self.supervisor.start()

    async def ready(self) -> str | None:
        """None while the engine serves; else why not (for /readyz)."""
        return None if self.supervisor.up else f"restarting; {self.supervisor.last_failure}"

    def _engine_call(self, call: ModelCall) -> ModelCall:
        req = call.request
        if req.n not in (None, 1):
            raise ModelParamInvalid("invalid parameter `n`: the embedded engine generates one choice")
        body = {k: v for k, v in req.raw.items() if k not in DROPPED_FIELDS}
        body["messages"] = engine_messages(req.messages, media_parts(self.inputs))
        body["max_tokens"] = req.max_tokens or self.defaults.max_tokens
        body.setdefault("temperature", self.defaults.temperature)
        body.setdefault("top_p", self.defaults.top_p)
        body["stream"] = True
        body["timings_per_token"] = True  # exact token counts with every token, so a cut answer is billed right
        return ModelCall(dataclasses.replace(req, raw=body), call.chunks, call.request_id)

    def _adapter_for(self, child: EngineChild) -> OpenAICompatAdapter:
        if self._adapter is None or self._adapter[0] is not child:
            adapter = OpenAICompatAdapter(self.name, base_url=child.base_url + "/v1", api_key=child.api_key,
                                          client=self.client, estimator=self.estimator, timeouts=self.timeouts)
            self._adapter = (child, adapter)
        return self._adapter[1]

    async def stream(self, call: ModelCall, outcome: StreamOutcome) -> AsyncIterator[list[dict | bytes]]:
        engine_call = self._engine_call(call)
        async with self.queue.slot(call.tenant):
            try:
                # An engine found dead before it produced anything for this request (it died just before,
                # and the supervisor had not seen it yet) is waited for once; one that dies while answering
                # ends the answer, since its tokens may already be with the client.
                for attempt in (1, 2):
                    child = await self._running()
                    produced = False
                    try:
                        async for batch in self._adapter_for(child).stream(engine_call, outcome):
                            if not produced:
                                produced = True
                                _empty_content_not_null(batch[0])
                            yield batch
                        return
                    except ModelRequestFailed as exc:
                        if not _may_have_died(child, exc) or not await self.supervisor.lost(child):
                            raise
                        if produced or attempt == 2:
                            raise ModelRequestFailed(f"the embedded engine stopped while answering: {child.died()}; "
                                                     "it is being restarted") from None
            finally:
                self._count(outcome.usage.completion_tokens)

    async def _running(self) -> EngineChild:
        try:
            return await self.supervisor.ready(self.ready_timeout)
        except EngineDied as exc:
            raise ModelRequestFailed(str(exc)) from None

    async def complete(self, call: ModelCall) -> Completion:
        outcome = StreamOutcome()
        parts: list[str] = []
        try:
            async for batch in self.stream(call, outcome):
                for chunk in batch:
                    if isinstance(chunk, bytes):
                        chunk = orjson.loads(chunk)
                    for choice in chunk.get("choices") or ():
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            parts.append(content)
        except ModelRequestFailed as exc:
            if exc.usage is None and outcome.usage.completion_tokens:
                raise ModelRequestFailed(exc.message, upstream_status=exc.upstream_status, usage=outcome.usage) from None
            raise
        message = {"role": "assistant", "content": "".join(parts)}
        body = call.chunks.completion(message, outcome.finish_reason or "stop", outcome.usage)
        return Completion(body, outcome.usage)

    def _count(self, tokens: int) -> None:
        now = time.monotonic()
        self.generated += tokens
        self._recent.append((now, tokens))
        while self._recent and self._recent[0][0] < now - RATE_WINDOW:
            self._recent.popleft()

    def stats(self) -> EngineStats:
        now = time.monotonic()
        recent = sum(n for at, n in self._recent if at >= now - RATE_WINDOW)
        return EngineStats(self.name, self.supervisor.up, self.queue.waiting, self.queue.busy, self.queue.slots,
                           recent / RATE_WINDOW, self.generated, self.supervisor.restarts)

    async def close(self) -> None:
        await self.supervisor.close()


def _may_have_died(child: EngineChild, exc: ModelRequestFailed) -> bool:
    """Whether a failure may be the engine dying, worth waiting (holding a slot) for its exit: it has exited,
    or the connection broke without an answer. An HTTP answer (a prompt over the context) or a timeout
    comes from a live engine."""
    if child.proc is not None and child.proc.returncode is not None:
        return True
    return exc.upstream_status is None and not isinstance(exc, ModelRequestTimeout)


def _empty_content_not_null(chunk: dict | bytes) -> None:
    """llama-server opens with `"content": null`; clients of the public service get an empty string."""
    if isinstance(chunk, dict):
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta")
            if isinstance(delta, dict) and "content" in delta and delta["content"] is None:
                delta["content"] = ""
