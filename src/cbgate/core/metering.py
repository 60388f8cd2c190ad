"""Metering one chat request: its ledger record and its metrics, however the request ends.

The chat service opens a `Meter` per request; `finish()` runs exactly once (normal end, error, or the
client's disconnect cancelling the task) and only appends to the spool and updates counters in memory.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator, Callable

import orjson

from cbgate.core.auth import Principal
from cbgate.core.metrics import Metrics
from cbgate.errors import CloudBaseError
from cbgate.protocol.chat_request import ChatRequest
from cbgate.protocol.chat_response import Usage
from cbgate.providers.base import StreamOutcome
from cbgate.store.ledger import LedgerWriter
from cbgate.store.usage import UsageRecord

log = logging.getLogger("cbgate.metering")

INTERRUPTED = "GATEWAY_INTERRUPTED"  # the code of a request whose process died before it ended
CLIENT_CLOSED_STATUS = 499  # nginx's "client closed request": the client left before the answer
CONTENT_LIMIT = 64 * 1024  # characters of logged content kept per request


def answer_text(chunk: dict | bytes) -> str:
    """The content a stream chunk adds to the answer (only parsed when content logging is on)."""
    if isinstance(chunk, bytes):
        try:
            chunk = orjson.loads(chunk)
        except orjson.JSONDecodeError:
            return ""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not choices:
        return ""
    return (choices[0].get("delta") or {}).get("content") or ""


def rough_prompt_tokens(messages: list[dict]) -> int:
    """About four characters a token: only for a request whose process died before it was counted."""
    chars = sum(len(m["content"]) if isinstance(m.get("content"), str) else 256 for m in messages)
    return max(1, chars // 4)


def _client_left(error: BaseException | None) -> bool:
    if isinstance(error, (asyncio.CancelledError, ConnectionError)):
        return True
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Meter:
    __slots__ = ("metering", "record", "req", "routed", "answered", "usage", "outcome", "started", "done",
                 "finishers", "answer")

    def __init__(self, metering: Metering, principal: Principal, group: str, req: ChatRequest,
                 request_id: str):
        self.metering = metering
        self.req = req
        self.record = UsageRecord(request_id=request_id, env_id=principal.env_id, key_id=principal.key_id,
                                  group_name=group, model=req.model[:128], stream=req.stream,
                                  created_at=time.time(), surface=req.surface)
        self.routed = False  # model and group are labels only once they resolved to a real route
        self.answered = False  # a stream's 200 went out, so later failures travel inside it
        self.usage: Usage | None = None
        self.outcome: StreamOutcome | None = None
        self.started = time.monotonic()
        self.done = False
        self.finishers: list[Callable[[UsageRecord], None]] = []
        self.answer: list[str] | None = [] if metering.log_content else None  # None: contents are not kept

    def note_completion(self, body: dict) -> None:
        if self.answer is not None and body.get("choices"):
            self.answer.append(body["choices"][0]["message"].get("content") or "")

    def note_chunk(self, chunk: dict | bytes) -> None:
        self.answer.append(answer_text(chunk))

    def on_finish(self, callback: Callable[[UsageRecord], None]) -> None:
        """Run `callback(record)` once the request ended, however it ended (e.g. settle a quota
        reservation to the real usage, release a concurrency slot); it must not block."""
        self.finishers.append(callback)

    def serving(self, deployment: str, outcome: StreamOutcome | None = None) -> None:
        """A deployment is about to serve: journal the request so even `kill -9` cannot lose it."""
        self.record.deployment = deployment
        self.outcome = outcome
        if not self.routed:
            self.routed = True
            if self.metering.ledger is not None:
                r = self.record
                self.metering.ledger.begin(UsageRecord(
                    r.request_id, r.env_id, r.key_id, r.group_name, r.model, deployment, r.stream,
                    prompt_tokens=rough_prompt_tokens(self.req.messages), estimated=True, status=500,
                    code=INTERRUPTED, created_at=r.created_at, surface=r.surface))

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
        usage = self.usage or (self.outcome.usage if self.outcome is not None else None)
        if usage is not None:
            r.prompt_tokens, r.completion_tokens, r.estimated = (
                usage.prompt_tokens, usage.completion_tokens, usage.estimated)
            r.cache_creation_tokens, r.cache_read_tokens = usage.cache_creation_tokens, usage.cache_read_tokens
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
                 log_content: bool = False, on_record: Callable[[UsageRecord], None] | None = None):
        self.ledger = ledger
        self.metrics = metrics or Metrics()
        self.log_content = log_content
        self.on_record = on_record  # the access log's view of a finished request

    def start(self, principal: Principal, group: str, req: ChatRequest, request_id: str) -> Meter:
        self.metrics.started(principal.env_id, group)
        return Meter(self, principal, group, req, request_id)

    def finished(self, meter: Meter, elapsed: float, ttft: float | None) -> None:
        r = meter.record
        code = r.code or ("CLIENT_CLOSED" if r.disconnected else "OK")
        model = r.model if meter.routed else ""
        self.metrics.finished(r.env_id, r.group_name, model, code, r.prompt_tokens, r.completion_tokens,
                              elapsed, ttft)
        if self.ledger is not None:
            self.ledger.finish(r)
        if self.on_record is not None:
            self.on_record(r)


class MeteredStream:
    """The chunks of a stream whose first chunk arrived (its 200 is out), metered however it ends."""

    def __init__(self, chunks: AsyncIterator, meter: Meter, also_close: AsyncIterator | None = None):
        self.chunks = chunks
        self.also_close = also_close  # the provider's stream, in case `chunks` was never started
        self.meter = meter
        self.error: BaseException | None = None
        meter.answered = True

    def __aiter__(self) -> MeteredStream:
        return self

    async def __anext__(self):
        try:
            chunk = await self.chunks.__anext__()
            if self.meter.answer is not None:
                self.meter.note_chunk(chunk)
            return chunk
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
