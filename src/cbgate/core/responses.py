"""The Responses API over the chat service: conversation state (previous_response_id) kept in the store
per environment, truncation and compaction against the model's context, and the answer rendered as a
Response object or its event stream. Admission, tenancy, metering and fallback are the chat service's."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import AsyncGenerator, AsyncIterator

from cbgate.core.auth import Principal
from cbgate.core.chat import ChatService
from cbgate.core.context import ContextCounter, compact, fit
from cbgate.core.metering import Meter, MeteredStream
from cbgate.errors import (
    CloudBaseError,
    InternalError,
    InvalidPath,
    ModelParamInvalid,
    ModelRequestFailed,
    PermissionDenied,
)
from cbgate.protocol.chat_request import ChatRequest, parse_chat_request
from cbgate.protocol.responses_render import ResponseStreamRenderer, output_items, response_object, response_usage
from cbgate.protocol.responses_request import (
    ResponsesRequest,
    chat_response_format,
    chat_tool_choice,
    chat_tools,
    items_to_messages,
    new_id,
    output_to_messages,
)
from cbgate.store.responses import StoredResponse, delete_response, load_response, purge_expired, save_response

log = logging.getLogger("cbgate.responses")

Event = tuple[str, dict]
PURGE_INTERVAL = 600.0  # seconds between sweeps of expired stored responses
AUTO_COMPACT_SHARE = 0.8  # compaction without a threshold starts at this share of the context


@dataclass(slots=True)
class ResponseEvents:
    """A started Responses stream: its events, the renderer that can still end it with a failure (the
    shutdown deadline), and the metered model stream under it."""
    events: AsyncGenerator[Event, None]
    renderer: ResponseStreamRenderer
    chunks: MeteredStream

    @property
    def meter(self) -> Meter:
        return self.chunks.meter

    async def aclose(self) -> None:
        """Close the events, then the model stream: a generator never started skips its `finally`, so a
        client gone before the first event would otherwise keep its slot and quota reservation (the meter
        finishes once, whichever closes first)."""
        try:
            await self.events.aclose()
        finally:
            await self.chunks.aclose()


class ResponsesService:
    def __init__(self, chat: ChatService, store, counter: ContextCounter, ttl_seconds: float):
        self.chat = chat
        self.store = store
        self.counter = counter
        self.ttl = ttl_seconds

    @staticmethod
    def _server_key_only(principal: Principal) -> None:
        """Stored responses are the environment's: a publishable key (shared by every browser) may not read
        or continue them, so it only gets answers that are never stored."""
        if principal.kind == "publishable":
            raise PermissionDenied("stored responses need a server API key; publishable keys may create "
                                   "responses only, which are not stored")

    async def _load(self, principal: Principal, response_id: str) -> StoredResponse | None:
        self._server_key_only(principal)
        return await asyncio.to_thread(load_response, self.store, principal.env_id, response_id, time.time())

    async def get(self, principal: Principal, response_id: str) -> StoredResponse:
        stored = await self._load(principal, response_id)
        if stored is None:
            raise InvalidPath(f"no stored response {response_id!r} in this environment")
        return stored

    async def delete(self, principal: Principal, response_id: str) -> dict:
        self._server_key_only(principal)
        if not await asyncio.to_thread(delete_response, self.store, principal.env_id, response_id):
            raise InvalidPath(f"no stored response {response_id!r} in this environment")
        return {"id": response_id, "object": "response", "deleted": True}

    async def _conversation(self, principal: Principal, group: str, req: ResponsesRequest,
                            request_id: str) -> tuple[list[dict], list[dict]]:
        try:
            return await self._prepare(principal, group, req, request_id)
        except CloudBaseError as err:
            if not isinstance(err, ModelRequestFailed):  # the summary call's own meter counted that one
                self.chat.metering.metrics.rejected(err.code)  # refused before any meter started
            raise

    async def _prepare(self, principal: Principal, group: str, req: ResponsesRequest,
                       request_id: str) -> tuple[list[dict], list[dict]]:
        """(system messages, the conversation this turn sends): the previous response's context, this
        request's input, compacted and truncated as asked."""
        if principal.kind == "publishable":
            req.store = False
        context: list[dict] = []
        if req.previous_response_id:
            previous = await self._load(principal, req.previous_response_id)
            if previous is None:
                raise ModelParamInvalid(f"invalid parameter `previous_response_id`: no stored response "
                                        f"{req.previous_response_id!r} in this environment")
            context = previous.context
        system = [{"role": "system", "content": req.instructions}] if req.instructions else []
        conversation = context + items_to_messages(req.input_items)
        window = self.chat.context_window(principal, group, req.model)
        if req.compact_threshold is not None:
            threshold = req.compact_threshold or (int(window * AUTO_COMPACT_SHARE) if window else None)
            if threshold and await self.counter.tokens(system + conversation) > threshold:
                conversation, _ = await compact(conversation, self._summarizer(principal, group, req.model,
                                                                               request_id), keep_newest=True)
        conversation = await fit(self.counter, system, conversation, window, req.max_output_tokens, req.truncation)
        return system, conversation

    def _summarizer(self, principal: Principal, group: str, model: str, request_id: str):
        async def summarize(messages: list[dict], max_tokens: int) -> str:
            req = parse_chat_request({"model": model, "messages": messages, "max_tokens": max_tokens})
            req.surface = "responses"
            body = await self.chat.complete(principal, group, req, request_id + "-compact")
            return (body["choices"][0]["message"].get("content") or "").strip()
        return summarize

    @staticmethod
    def _chat_request(req: ResponsesRequest, messages: list[dict]) -> ChatRequest:
        body: dict = {"model": req.model, "messages": messages, "stream": req.stream}
        for name, value in (("max_tokens", req.max_output_tokens), ("temperature", req.temperature),
                            ("top_p", req.top_p), ("parallel_tool_calls", req.parallel_tool_calls),
                            ("user", req.user), ("response_format", chat_response_format(req.text_format))):
            if value is not None:
                body[name] = value
        if req.tools:
            body["tools"] = chat_tools(req.tools)
        if req.tool_choice is not None:
            body["tool_choice"] = chat_tool_choice(req.tool_choice)
        if req.stream:
            body["stream_options"] = {"include_usage": True}
        chat = parse_chat_request(body)
        chat.surface = "responses"
        return chat

    async def _store(self, principal: Principal, req: ResponsesRequest, body: dict,
                     conversation: list[dict]) -> None:
        if not req.store:
            return
        now = time.time()
        stored = StoredResponse(body["id"], principal.env_id, req.model, req.previous_response_id, now,
                                now + self.ttl, body, req.input_items, conversation + output_to_messages(body["output"]))
        try:
            await asyncio.to_thread(save_response, self.store, stored)
        except Exception:  # the answer was served and billed: it goes out, it is just not stored
            log.exception("response %s was answered and billed but could not be stored; later turns cannot "
                          "continue from it or retrieve it", body["id"])

    async def create(self, principal: Principal, group: str, req: ResponsesRequest, request_id: str) -> dict:
        system, conversation = await self._conversation(principal, group, req, request_id)
        completion = await self.chat.complete(principal, group, self._chat_request(req, system + conversation),
                                              request_id)
        choice = completion["choices"][0]
        body = response_object(new_id("resp"), req, int(time.time()), status="completed",
                               output=output_items(choice.get("message") or {}), usage=completion.get("usage"),
                               finish=choice.get("finish_reason"))
        await self._store(principal, req, body, conversation)
        return body

    async def open_stream(self, principal: Principal, group: str, req: ResponsesRequest,
                          request_id: str) -> ResponseEvents:
        """Prepare the conversation and start the model's stream (failures so far are plain errors), then
        hand back the Responses events; a later failure ends them with response.failed and `error`."""
        system, conversation = await self._conversation(principal, group, req, request_id)
        chunks = await self.chat.open_stream(principal, group, self._chat_request(req, system + conversation),
                                             request_id)
        renderer = ResponseStreamRenderer(new_id("resp"), req)
        return ResponseEvents(self._events(principal, req, conversation, chunks, renderer, request_id), renderer,
                              chunks)

    async def _events(self, principal: Principal, req: ResponsesRequest, conversation: list[dict], chunks,
                      renderer: ResponseStreamRenderer, request_id: str) -> AsyncIterator[Event]:
        try:
            for event in renderer.start():
                yield event
            try:
                async for chunk in chunks:
                    for event in renderer.feed(chunk):
                        yield event
            except CloudBaseError as err:
                for event in renderer.failure_events(err, request_id):
                    yield event
                return
            except Exception:
                log.exception("responses stream %s failed", request_id)
                for event in renderer.failure_events(InternalError("the stream failed inside the gateway"),
                                                     request_id):
                    yield event
                return
        finally:
            await chunks.aclose()  # meters the request, however it ended
        events, final = renderer.finish_events()
        for event in events:
            yield event
        await self._store(principal, req, final, conversation)

    async def compact(self, principal: Principal, group: str, model: str, request_id: str, *,
                      previous_response_id: str | None = None, input_items: list[dict] | None = None,
                      instructions: str | None = None) -> dict:
        """Manual compaction: the conversation so far (a stored response's, and/or the input given) as one
        summary by the same model, stored as a new response that later turns continue from."""
        self._server_key_only(principal)
        context: list[dict] = []
        if previous_response_id:
            context = (await self.get(principal, previous_response_id)).context
        conversation = context + items_to_messages(input_items or [])
        if not conversation:
            raise ModelParamInvalid("invalid parameter `input`: there is no conversation to compact")
        self.chat.context_window(principal, group, model)  # the model must be callable here
        usage: dict = {}

        async def summarize(messages: list[dict], max_tokens: int) -> str:
            if instructions:
                messages = [messages[0], {"role": "system", "content": instructions}] + messages[1:]
            req = parse_chat_request({"model": model, "messages": messages, "max_tokens": max_tokens})
            req.surface = "responses"
            body = await self.chat.complete(principal, group, req, request_id)
            usage.update(body.get("usage") or {})
            return (body["choices"][0]["message"].get("content") or "").strip()

        compacted, summary = await compact(conversation, summarize, keep_newest=False)
        item = {"type": "compaction", "id": new_id("cmp"), "encrypted_content": summary or ""}
        body = {"id": new_id("resp"), "object": "response.compaction", "created_at": int(time.time()),
                "output": [item], "usage": response_usage(usage)}
        now = time.time()
        await asyncio.to_thread(save_response, self.store, StoredResponse(
            body["id"], principal.env_id, model, previous_response_id, now, now + self.ttl, body,
            list(input_items or []), compacted))
        return body

    async def purge_forever(self) -> None:
        """Delete expired stored responses now and then (reads already ignore them)."""
        while True:
            try:
                removed = await asyncio.to_thread(purge_expired, self.store, time.time())
                if removed:
                    log.info("removed %d expired stored responses", removed)
            except Exception as exc:  # the store being away must not end the sweep
                log.warning("could not purge expired stored responses: %s", exc)
            await asyncio.sleep(PURGE_INTERVAL)
