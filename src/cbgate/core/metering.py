"""Metering one chat request: its ledger record and its metrics, however the request ends.

The model service opens a `Meter` per request; `finish()` runs exactly once (normal end, error, or the
client's disconnect cancelling the task) and only appends to the spool and updates counters in memory.

The billing rule, in one place (`Meter.finish`): a request bills tokens only once its answer began, that
is once a non-streamed body was produced or a stream's first chunk went out. A failure before that (an
upstream error, a malformed first event, a timeout, a refusal, the client leaving, the gateway stopping)
bills 0 tokens, whichever deployment failed and however, except tokens a deployment reports it generated
before failing (the embedded engine dying under a non-streamed answer: `generated_before_failure`). After the
first chunk, a stream bills its prompt
and the tokens produced up to its end, however it ended; a `kill -9` bills the tokens journalled up to
the last progress entry (at the first chunk, then every PROGRESS_TOKENS chunks or PROGRESS_SECONDS), and
nothing when no chunk went out.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator, Callable, Protocol

import orjson

from cbgate.core.auth import Principal
from cbgate.core.metrics import Metrics
from cbgate.core.tracing import NO_TRACING, Tracing
from cbgate.errors import CloudBaseError, ServiceUnavailable
from cbgate.pricing import PriceTable
from cbgate.protocol.chat_request import ChatRequest
from cbgate.protocol.chat_response import Usage
from cbgate.protocol.chunks import Chunk, NativeEvent
from cbgate.providers.base import StreamOutcome
from cbgate.store.ledger import LedgerWriter
from cbgate.store.spool import SpoolUnwritable
from cbgate.store.usage import UsageRecord
from cbgate.tokens import prompt_tokens

log = logging.getLogger("cbgate.metering")

INTERRUPTED = "GATEWAY_INTERRUPTED"  # the code of a request whose process died before it ended
CLIENT_CLOSED_STATUS = 499  # nginx's "client closed request": the client left before the answer
CONTENT_LIMIT = 64 * 1024  # characters of logged content kept per request
PROGRESS_TOKENS = 16  # a stream journals its progress every this many chunks (one chunk ~ one token) ...
PROGRESS_SECONDS = 0.25  # ... or this often while chunks arrive, whichever comes first


def answer_text(chunk: Chunk) -> str:
    """The content a stream chunk adds to the answer (only parsed when content logging is on)."""
    if isinstance(chunk, NativeEvent):
        return chunk.text()
    if isinstance(chunk, bytes):
        try:
            chunk = orjson.loads(chunk)
        except orjson.JSONDecodeError:
            return ""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not choices:
        return ""
    return (choices[0].get("delta") or {}).get("content") or ""


class PromptCounter(Protocol):
    async def load(self) -> None: ...

    def usage_now(self, messages: list[dict], completion_parts: list[str]) -> Usage: ...


class StreamCut(ServiceUnavailable):
    """A stream the gateway ended itself (its shutdown deadline passed): a gateway error, not the client's."""


def _client_left(error: BaseException | None) -> bool:
    if isinstance(error, (asyncio.CancelledError, ConnectionError)):
        return True
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Meter:
    __slots__ = ("metering", "record", "req", "routed", "answered", "usage", "outcome", "started", "done",
                 "finishers", "answer", "unrecorded", "cut", "streamed", "journalled", "journalled_at",
                 "generated", "price", "run_ends", "streams")

    def __init__(self, metering: Metering, principal: Principal, group: str, req: ChatRequest,
                 request_id: str, price: PriceTable | None = None):
        self.metering = metering
        self.req = req
        self.price = price  # the price in force as the request started: later changes never reprice it
        self.record = UsageRecord(request_id=request_id, env_id=principal.env_id, key_id=principal.key_id,
                                  group_name=group, model=req.model[:128], stream=req.stream,
                                  created_at=time.time(), surface=req.surface, agent_id=req.agent_id,
                                  currency=price.currency if price is not None else "",
                                  price=price.as_dict() if price is not None else None)
        self.routed = False  # model and group are labels only once they resolved to a real route
        self.answered = False  # a stream's 200 went out, so later failures travel inside it
        self.generated = False  # a failed deployment reported tokens it generated: billed all the same
        self.usage: Usage | None = None
        self.outcome: StreamOutcome | None = None
        self.started = time.monotonic()
        self.done = False
        self.finishers: list[Callable[[UsageRecord], None]] = []
        self.answer: list[str] | None = [] if metering.log_content else None  # None: contents are not kept
        self.unrecorded = False  # refused because the spool could not promise its record: none is kept
        self.cut: StreamCut | None = None  # set when the gateway ends the stream itself
        self.streamed = 0  # chunks sent (about one token each): what a crash bills
        self.journalled = 0  # `streamed` as the spool's last progress entry has it
        self.journalled_at = self.started
        # an agent run's record counts the run in /metrics, unless the run goes on (its loop counts it then)
        self.run_ends = True
        # whether the answer may go out as a stream, journalling progress: only then can a crash bill the
        # prompt (spool.replay_records bills an open entry's prompt only with tokens streamed), so only then
        # does the open entry need the prompt counted (cl100k: ~7 us a message)
        self.streams = req.stream

    def generated_before_failure(self, usage: Usage) -> None:
        """The deployment failed after generating these tokens (the engine died under a non-streamed
        answer): the client gets the failure, and what was generated is billed."""
        self.usage = usage
        self.generated = True

    def note_completion(self, body: dict) -> None:
        if self.answer is not None and body.get("choices"):
            self.answer.append(body["choices"][0]["message"].get("content") or "")

    def note_chunk(self, chunk: dict | bytes) -> None:
        self.answer.append(answer_text(chunk))

    def on_finish(self, callback: Callable[[UsageRecord], None]) -> None:
        """Run `callback(record)` once the request ended, however it ended (e.g. settle a quota
        reservation to the real usage, release a concurrency slot); it must not block."""
        self.finishers.append(callback)

    def admitted(self) -> None:
        self.metering.metrics.admitted(self.record.env_id)

    def serving(self, deployment: str) -> None:
        """A deployment is about to serve: journal the request so even `kill -9` cannot lose it."""
        self.record.deployment = deployment
        self.outcome = None  # a failed deployment's stream outcome is not this one's
        if not self.routed:
            self.routed = True
            if self.metering.ledger is not None:
                self._begin(deployment)

    def _begin(self, deployment: str) -> None:
        """Journal the request before anything is served; refuse it (503) if that cannot be promised,
        unless the operator chose answering over billing."""
        r = self.record
        prompt = self.metering.prompt_tokens(self.req.messages) if self.streams else 0
        try:
            self.metering.ledger.begin(UsageRecord(
                r.request_id, r.env_id, r.key_id, r.group_name, r.model, deployment, r.stream,
                prompt_tokens=prompt, estimated=True, status=500,
                code=INTERRUPTED, created_at=r.created_at, surface=r.surface, agent_id=r.agent_id, currency=r.currency,
                price=r.price))
        except SpoolUnwritable:
            if self.metering.answer_unbilled:
                return  # served anyway: its record goes straight to the database when it ends
            self.unrecorded = True
            raise ServiceUnavailable("the gateway cannot record usage right now; try again shortly") from None

    def note_streamed(self, chunks: int = 1) -> None:
        """More chunks went out; journal the progress now and then, so a crash bills it."""
        self.streamed += chunks
        ledger = self.metering.ledger
        if ledger is None:
            return
        unsaid = self.streamed - self.journalled
        # the first chunk always: a crash before it bills nothing (the billing rule), after it the prompt too
        due = unsaid >= PROGRESS_TOKENS or time.monotonic() - self.journalled_at >= PROGRESS_SECONDS
        if due or self.journalled == 0:
            self.journalled, self.journalled_at = self.streamed, time.monotonic()
            ledger.progress(self.record.request_id, self.streamed)

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, _type, error, _tb) -> bool:
        self.finish(error)
        return False

    def finish(self, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        r = self.record
        if isinstance(error, CloudBaseError):
            error.counted = True  # this record counts it; the edge must not count it again
        if self.cut is not None:
            error = self.cut
            error.counted = True
        usage = self.usage or (self.outcome.usage if self.outcome is not None else None)
        # the billing rule (module docstring): nothing is billed for a request whose answer never began
        if usage is not None and (error is None or self.answered or self.generated):
            r.prompt_tokens, r.completion_tokens, r.estimated = (
                usage.prompt_tokens, usage.completion_tokens, usage.estimated)
            r.cache_creation_tokens, r.cache_read_tokens = usage.cache_creation_tokens, usage.cache_read_tokens
            if self.price is not None:  # the same rule the store applies to the row (UsageRecord.row)
                r.cost_micros = self.price.cost(r.prompt_tokens, r.completion_tokens, r.cache_read_tokens)
        elapsed = time.monotonic() - self.started
        r.latency_ms = round(elapsed * 1000, 3)
        first = self.outcome.first_token_at if self.outcome is not None else None
        ttft = first - self.started if first is not None else None
        r.ttft_ms = round(ttft * 1000, 3) if ttft is not None else None
        if isinstance(error, CloudBaseError):
            r.status, r.code = (200 if self.answered else error.status), error.code
        elif _client_left(error):
            r.disconnected = True
            r.status = 200 if self.answered else CLIENT_CLOSED_STATUS
        elif error is not None:
            r.status, r.code = (200 if self.answered else 500), "SYS_ERR"
        if self.answer is not None:
            r.content = orjson.dumps({"messages": self.req.messages,
                                      "answer": "".join(self.answer)}).decode()[:CONTENT_LIMIT]
        self.metering.finished(self, elapsed, ttft)
        for callback in self.finishers:
            try:
                callback(r)
            except Exception:  # one failing settlement must not hide the request's own outcome
                log.exception("a finish callback of request %s failed", r.request_id)


class Metering:
    def __init__(self, ledger: LedgerWriter | None = None, metrics: Metrics | None = None,
                 log_content: bool = False, on_record: Callable[[UsageRecord], None] | None = None,
                 prompt_counter: PromptCounter | None = None, answer_unbilled: bool = False,
                 tracing: Tracing = NO_TRACING):
        self.ledger = ledger
        self.tracing = tracing
        self.metrics = metrics or Metrics()
        self.log_content = log_content
        self.on_record = on_record  # the access log's view of a finished request
        self.prompt_counter = prompt_counter  # what adapters count a prompt with when usage is not reported
        self.answer_unbilled = answer_unbilled  # serve even when the spool cannot promise the record
        self._loading: asyncio.Task | None = None

    def prompt_tokens(self, messages: list[dict]) -> int:
        """The prompt as normal operation counts it when the upstream reports nothing: a crashed request's
        record carries this, so it bills what the same request would have billed had it ended."""
        if self.prompt_counter is not None:
            if self._loading is None:  # its encoding loads off the loop once; a rough count until then
                self._loading = asyncio.get_running_loop().create_task(self.prompt_counter.load())
            return self.prompt_counter.usage_now(messages, []).prompt_tokens
        return prompt_tokens(messages)

    def start(self, principal: Principal, group: str, req: ChatRequest, request_id: str,
              price: PriceTable | None = None) -> Meter:
        self.metrics.started(principal.env_id, group)
        return Meter(self, principal, group, req, request_id, price)

    def finished(self, meter: Meter, elapsed: float, ttft: float | None) -> None:
        r = meter.record
        code = r.code or ("CLIENT_CLOSED" if r.disconnected else "OK")
        model = r.model if meter.routed else ""
        self.metrics.finished(r.env_id, r.group_name, model, code, r.prompt_tokens, r.completion_tokens,
                              elapsed, ttft)
        if r.agent_id is not None and meter.run_ends:  # one agent run, however it ended
            self.metrics.agent_run(r.env_id, r.agent_id, code)
        if self.ledger is not None and not meter.unrecorded:
            with self.tracing.span("cbgate.ledger", {"cbgate.code": code}):
                self.ledger.finish(r)
        if self.on_record is not None:
            self.on_record(r)


class MeteredStream:
    """The batches of chunks of a stream whose first batch arrived (its 200 is out), metered however it ends."""

    def __init__(self, chunks: AsyncIterator[list[Chunk]], meter: Meter, also_close: AsyncIterator | None = None):
        self.chunks = chunks
        self.also_close = also_close  # the provider's stream, in case `chunks` was never started
        self.meter = meter
        self.error: BaseException | None = None
        meter.answered = True

    def __aiter__(self) -> MeteredStream:
        return self

    async def __anext__(self) -> list[Chunk]:
        try:
            batch = await self.chunks.__anext__()
            meter = self.meter
            meter.note_streamed(len(batch))
            if meter.answer is not None:
                for chunk in batch:
                    meter.note_chunk(chunk)
            return batch
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            self.error = exc
            raise

    async def aclose(self) -> None:
        try:
            await self.chunks.aclose()
            if self.also_close is not None:
                await self.also_close.aclose()
        finally:
            self.meter.finish(self.error)
