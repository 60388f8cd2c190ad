"""The model service, which every surface's model call goes through (chat, Messages, Responses, images):
authenticate, resolve, admit, call a deployment (falling back to the next on upstream failure before the
first byte), and hand back a body or an async stream of canonical chunks (in batches, one per upstream
read), metered however it ends."""
from __future__ import annotations

import logging
import time
from typing import AsyncIterator, Awaitable, Callable, TypeVar

import orjson

from cbgate.core.auth import Principal, authenticate
from cbgate.core.budgets import BudgetGate
from cbgate.core.inputs import able_deployments
from cbgate.core.key_kinds import Right, limit_scope, require
from cbgate.core.permissions import permit_model
from cbgate.core.metering import Meter, MeteredStream, Metering
from cbgate.core.prices import PriceBook
from cbgate.core.resolve import Resolver
from cbgate.core.tenants import TenantDirectory
from cbgate.core.tracing import NO_TRACING, Tracing
from cbgate.errors import ModelNotSupported, ModelRequestFailed
from cbgate.limits.base import Limiter, Scope, estimate_cost, key_account
from cbgate.protocol.chat_request import ChatRequest
from cbgate.protocol.chunks import Chunk, NativeEvent
from cbgate.protocol.chat_response import ChunkFactory, models_list
from cbgate.protocol.images import image_count
from cbgate.providers.base import ModelCall, Provider, StreamOutcome

log = logging.getLogger("cbgate.fallback")

Answer = TypeVar("Answer")  # what one deployment's attempt hands back: a body, or a started stream


class ModelService:
    def __init__(self, directory: TenantDirectory, resolver: Resolver, metering: Metering | None = None,
                 limiter: Limiter | None = None, tracing: Tracing = NO_TRACING, prices: PriceBook | None = None,
                 budgets: BudgetGate | None = None):
        self.directory = directory
        self.prices = prices or PriceBook(lambda: resolver.registry.settings)
        self.resolver = resolver
        self.metering = metering or Metering()
        self.limiter = limiter
        self.budgets = budgets
        self.tracing = tracing
        self.started = int(time.time())

    def authenticate(self, authorization: str | None, host: str | None) -> Principal:
        principal = authenticate(self.directory.current(), authorization, host)
        self.directory.note_key_used(principal.key_id)
        return principal

    def check_group(self, principal: Principal, group: str) -> None:
        self.resolver.check_group(principal.env_id, group, self.directory.snapshot)

    def list_models(self, principal: Principal, group: str) -> dict:
        names = self.resolver.enabled_models(self.directory.snapshot, principal.env_id, group)
        return models_list([n for n in names if principal.permissions.allows_model(group, n)], group, self.started)

    def _meter(self, principal: Principal, group: str, req: ChatRequest, request_id: str) -> Meter:
        """The request's meter, with the price in force now: a price changed later never reprices it."""
        price = self.prices.price(self.directory.snapshot, principal.env_id, group, req.model)
        return self.metering.start(principal, group, req, request_id, price)

    def _route(self, principal: Principal, group: str, req: ChatRequest) -> list[Provider]:
        return self._resolve(principal, group, req.model).providers

    def _resolve(self, principal: Principal, group: str, model: str):
        """Every surface's way to a model: the env's route, then the key's permission (one function)."""
        route = self.resolver.resolve(self.directory.snapshot, principal.env_id, group, model)
        permit_model(principal.permissions, group, model)
        return route

    def context_window(self, principal: Principal, group: str, model: str) -> int | None:
        """The model's context in tokens (None: not known), once it resolved to a route this key may call."""
        return self.resolver.context_window(self._resolve(principal, group, model))

    async def _admit(self, principal: Principal, req: ChatRequest, meter: Meter,
                     providers: list[Provider] = ()) -> None:
        """Reserve the request's worst case under its budgets, take a slot and reserve its tokens, or raise a
        429; the meter gives them back (settled to the real usage and cost) however the request ends: done,
        failed, refused here, or the client gone. The one admission of every surface's model call."""
        if self.budgets is not None:  # first: a request its budget refuses takes no slot and no rpm
            budgets = self.directory.snapshot.budgets_for(principal.env_id, principal.key_id)
            if budgets:
                await self.budgets.admit(budgets, req, meter.price, _default_max(providers), meter.on_finish)
        if self.limiter is None:
            return
        limits = self.directory.snapshot.limits_for(principal.env_id, principal.kind)
        key_limits = principal.permissions.limits  # the key's own, checked in the same admission as its env's
        if not limits.any and key_limits is None:
            return
        scope = limit_scope(principal.env_id, principal.kind)
        also = () if key_limits is None else (
            Scope(f"key/{principal.key_id}", key_account(principal.key_id), key_limits, "this API key"),)
        ticket = await self.limiter.admit(scope, principal.env_id, limits,
                                          estimate_cost(req.messages, req.max_tokens), also)
        meter.on_finish(lambda r: ticket.finish(r.prompt_tokens + r.completion_tokens))

    async def admit(self, principal: Principal, req: ChatRequest, meter: Meter) -> None:
        """Admission for work that is not a model call of this service (a fronted agent's run): the same
        limits, released by `meter` however the work ends."""
        with self.tracing.span("cbgate.admission", {"cbgate.env": principal.env_id}):
            await self._admit(principal, req, meter)
        meter.admitted()

    async def complete(self, principal: Principal, group: str, req: ChatRequest, request_id: str,
                       run_ends: bool = True) -> dict:
        """`run_ends=False`: a model round of an agent run that goes on (the run's loop counts the run)."""
        with self._meter(principal, group, req, request_id) as meter:  # records however it ends
            meter.run_ends = run_ends
            meter.streams = False
            return await self._serve(principal, group, req, request_id, meter, self._answer)

    async def generate_images(self, principal: Principal, group: str, req: ChatRequest, request_id: str) -> dict:
        """An image generation on the deployments that serve one, metered per image."""
        with self._meter(principal, group, req, request_id) as meter:
            meter.streams = False
            require(principal.kind, Right.GENERATE_IMAGES)
            if not any(p.capabilities.image_generation for p in self._route(principal, group, req)):
                raise ModelNotSupported(f"model {req.model!r} in group {group!r} does not generate images: only "
                                        f"OpenAI-compatible upstreams do, not the embedded engine or Anthropic upstreams")
            return await self._serve(principal, group, req, request_id, meter, self._images)

    async def open_stream(self, principal: Principal, group: str, req: ChatRequest,
                          request_id: str) -> MeteredStream:
        """Start the stream and wait for its first batch of chunks, so any failure up to here is a JSON error.
        The stream returned records the request when it is closed (ended, failed or dropped)."""
        meter = self._meter(principal, group, req, request_id)
        meter.streams = True
        try:
            return await self._serve(principal, group, req, request_id, meter, self._start_stream)
        except BaseException as exc:
            meter.finish(exc)
            raise

    async def _serve(self, principal: Principal, group: str, req: ChatRequest, request_id: str, meter: Meter,
                     attempt: Callable[[Provider, ModelCall, Meter], Awaitable[Answer]]) -> Answer:
        """Route, admit, then try each deployment in turn until one answers: the one fallback loop.
        A deployment's failure before its first byte moves on to the next; a failure the client's own
        request caused goes back to the client at once, since every deployment would refuse it. Images or audio
        go only to the deployments that read them (core/inputs.py), refused before admission when none does."""
        providers = able_deployments(self._route(principal, group, req), req, group)
        with self.tracing.span("cbgate.admission", {"cbgate.env": principal.env_id}):
            await self._admit(principal, req, meter, providers)
        meter.admitted()
        call = ModelCall(req, ChunkFactory(req.model), request_id, tenant=principal.env_id)
        failures: list[tuple[str, ModelRequestFailed]] = []  # every deployment that failed, in order
        for provider in providers:
            meter.serving(provider.name)
            with self.tracing.span("cbgate.upstream", {"cbgate.deployment": provider.name,
                                                       "gen_ai.request.model": req.model}) as span:
                try:
                    return await attempt(provider, call, meter)  # a stream's span ends at its first chunk
                except ModelRequestFailed as exc:
                    if exc.client_caused:
                        raise
                    failures.append((provider.name, exc))
                    _skipped(span, request_id, req.model, provider.name, exc)
        if not failures:
            raise ModelRequestFailed(f"model {req.model!r} has no deployment to serve it")
        last = failures[-1][1]
        last.failures = failures  # TensorZero's ModelProvidersExhausted: all of them kept, the last one answered
        raise last

    @staticmethod
    async def _answer(provider: Provider, call: ModelCall, meter: Meter) -> dict:
        try:
            completion = await provider.complete(call)
        except ModelRequestFailed as exc:
            if exc.usage is not None:  # the deployment generated tokens before it failed: they are billed
                meter.generated_before_failure(exc.usage)
            raise
        meter.usage = completion.usage
        meter.note_completion(completion.body)
        return completion.native if completion.native is not None else completion.body

    @staticmethod
    async def _images(provider: Provider, call: ModelCall, meter: Meter) -> dict:
        if not provider.capabilities.image_generation:  # a fallback that cannot: on to the next
            raise ModelRequestFailed(f"{provider.name} does not generate images")
        answer = await provider.generate_images(call)
        meter.usage = answer.usage
        meter.record.images = image_count(answer.body)
        return answer.body

    async def _start_stream(self, provider: Provider, call: ModelCall, meter: Meter) -> MeteredStream:
        outcome = StreamOutcome()
        meter.outcome = outcome
        batches = provider.stream(call, outcome)
        try:
            first = await anext(batches)
        except StopAsyncIteration:
            raise ModelRequestFailed(f"{provider.name} returned an empty stream") from None
        except BaseException:
            await batches.aclose()
            raise
        return MeteredStream(self._rest(first, batches, call, outcome), meter, also_close=batches)

    async def _rest(self, first: list[Chunk], batches: AsyncIterator[list[Chunk]], call: ModelCall,
                    outcome: StreamOutcome) -> AsyncIterator[list[Chunk]]:
        # The chunk that carries finish_reason waits for the end of the stream and leaves with the usage,
        # as CloudBase's vendors send it: @cloudbase/ai reads usage from the chunks and never asks for it.
        # A batch goes on untouched until the adapter noted a finish (providers/base.py): only then are its
        # chunks looked at, one by one.
        held: list[Chunk] = []
        last_text = call.request.usage_on_last_text
        lag = None  # with last_text: the latest chunk with text, sent once the next one is seen
        try:
            batch = first
            while batch is not None:
                if held or outcome.finish_reason is not None:
                    cut = 0 if held else _first_finishing(batch, outcome.finishing)
                    held += batch[cut:]
                    batch = batch[:cut]
                if last_text and batch:
                    batch, lag = _lag_text(batch, lag)
                if batch:
                    yield batch
                batch = await anext(batches, None)
        finally:
            await batches.aclose()
        tail = [] if lag is None else [_with_usage(lag, outcome)]
        last = max((i for i, chunk in enumerate(held) if _finishing(chunk)), default=None)
        tail += [_with_usage(chunk, outcome) if i == last else chunk for i, chunk in enumerate(held)]
        if call.request.include_usage:
            tail.append(call.chunks.usage_chunk(outcome.usage))
        if tail:
            yield tail


def _default_max(providers: list[Provider]) -> int | None:
    """The most a request that names no max_tokens may generate on any of its deployments, where they say."""
    return max((p.capabilities.default_max_tokens or 0 for p in providers), default=0) or None


def _finishing(chunk: Chunk) -> bool:
    """Whether a chunk ends a choice. Adapters pass such chunks as dicts; bytes are checked for safety. A
    native event carries its usage in its own protocol (message_delta), so it is never held back."""
    if isinstance(chunk, NativeEvent):
        return False
    if isinstance(chunk, bytes):
        if chunk.find(b"finish_reason") < 0:  # not `in`: see providers/upstream_sse.py
            return False
        chunk = orjson.loads(chunk)
    for c in chunk.get("choices") or ():  # a loop, not any(generator): asked of every chunk
        if isinstance(c, dict) and c.get("finish_reason"):
            return True
    return False


def _first_finishing(batch: list[Chunk], marked: object | None) -> int:
    """Where the batch's first finishing chunk is: the one the adapter marked, else the first that says so (the
    batch's length when none does: a native event finished)."""
    if marked is not None:
        for i, chunk in enumerate(batch):  # by identity: reading each chunk cost ~2 us for a 13-chunk batch
            if chunk is marked:
                return i
    for i, chunk in enumerate(batch):
        if _finishing(chunk):
            return i
    return len(batch)


def _lag_text(batch: list[Chunk], lag: Chunk | None) -> tuple[list[Chunk], Chunk | None]:
    """With usage on the last chunk with text: each chunk with text waits until the next one is seen."""
    out = []
    for chunk in batch:
        if _has_text(chunk):
            if lag is not None:
                out.append(lag)
            lag = chunk
        else:
            out.append(chunk)
    return out, lag


def _has_text(chunk: Chunk) -> bool:
    if isinstance(chunk, NativeEvent):
        return False
    chunk = orjson.loads(chunk) if isinstance(chunk, bytes) else chunk
    return any(isinstance(c, dict) and (c.get("delta") or {}).get("content") for c in chunk.get("choices") or ())


def _with_usage(chunk: dict | bytes, outcome: StreamOutcome) -> dict:
    chunk = orjson.loads(chunk) if isinstance(chunk, bytes) else chunk  # a dict of this stream's own: no copy
    chunk["usage"] = outcome.usage.as_dict()
    return chunk


def _skipped(span, request_id: str, model: str, deployment: str, failure: ModelRequestFailed) -> None:
    """A deployment that failed before its first byte: logged and traced with its reason, whichever
    deployment the client's answer finally comes from."""
    log.warning("request %s: deployment %s of model %s failed (%s %s): %s", request_id, deployment, model,
                failure.upstream_status or "-", failure.code, failure.message)
    if span is not None:  # tracing is on
        span.set_attribute("cbgate.failure.code", failure.code)
        span.set_attribute("cbgate.failure.reason", failure.message[:500])
        if failure.upstream_status is not None:
            span.set_attribute("http.response.status_code", failure.upstream_status)
