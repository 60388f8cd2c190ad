"""The Responses API's state over the model service: conversation state (previous_response_id) kept in
the store per environment, truncation and compaction against the model's context. The edge calls `turn`
before the model and the turn's after-hook once the answer was served; rendering is the surface's
(protocol/responses_render.py). Admission, tenancy, metering and fallback are the model service's."""
from __future__ import annotations

import asyncio
import logging
import time

from cbgate.core.auth import Principal
from cbgate.core.key_kinds import Right, may, require
from cbgate.core.model_service import ModelService
from cbgate.core.context import ContextCounter, compact, fit
from cbgate.errors import InvalidPath, ModelParamInvalid
from cbgate.protocol.responses_render import response_usage
from cbgate.protocol.responses_request import (
    CompactRequest,
    ResponsesRequest,
    chat_request,
    items_to_messages,
    new_id,
    output_to_messages,
    summary_request,
)
from cbgate.protocol.surface import Turn
from cbgate.store.responses import StoredResponse, delete_response, load_response, purge_expired, save_response

log = logging.getLogger("cbgate.responses")

PURGE_INTERVAL = 600.0  # seconds between sweeps of expired stored responses
AUTO_COMPACT_SHARE = 0.8  # compaction without a threshold starts at this share of the context


class ResponsesService:
    def __init__(self, models: ModelService, store, counter: ContextCounter, ttl_seconds: float):
        self.models = models  # the model service every Responses turn and summary is a call of
        self.store = store
        self.counter = counter
        self.ttl = ttl_seconds

    @staticmethod
    def _server_key_only(principal: Principal) -> None:
        """Stored responses are the environment's: a publishable key (shared by every browser) may not read
        or continue them, so it only gets answers that are never stored."""
        require(principal.kind, Right.STORED_RESPONSES)

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

    async def _prepare(self, principal: Principal, group: str, req: ResponsesRequest,
                       request_id: str) -> tuple[list[dict], list[dict]]:
        """(system messages, the conversation this turn sends): the previous response's context, this
        request's input, compacted and truncated as asked."""
        if not may(principal.kind, Right.STORED_RESPONSES):
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
        window = self.models.context_window(principal, group, req.model)
        if req.compact_threshold is not None:
            threshold = req.compact_threshold or (int(window * AUTO_COMPACT_SHARE) if window else None)
            if threshold and await self.counter.tokens(system + conversation) > threshold:
                conversation, _ = await compact(conversation, self._summarizer(principal, group, req.model,
                                                                               request_id), keep_newest=True)
        conversation = await fit(self.counter, system, conversation, window, req.max_output_tokens, req.truncation)
        return system, conversation

    def _summarizer(self, principal: Principal, group: str, model: str, request_id: str):
        async def summarize(messages: list[dict], max_tokens: int) -> str:
            body = await self.models.complete(principal, group, summary_request(model, messages, max_tokens),
                                            request_id + "-compact")
            return (body["choices"][0]["message"].get("content") or "").strip()
        return summarize

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

    async def turn(self, principal: Principal, group: str, req: ResponsesRequest, request_id: str) -> Turn:
        """The hook the edge calls before the model: the conversation this turn sends (the stored one, this
        request's input, compacted and truncated as asked), and the after-hook that stores the answer."""
        system, conversation = await self._prepare(principal, group, req, request_id)
        if not system and not conversation:
            raise ModelParamInvalid("invalid parameter `input`: there is nothing to answer")

        async def after(body: dict) -> None:
            await self._store(principal, req, body, conversation)
        return Turn(chat_request(req, system + conversation), after)

    async def compact(self, principal: Principal, group: str, req: CompactRequest, request_id: str) -> dict:
        """Manual compaction: the conversation so far (a stored response's, and/or the input given) as one
        summary by the same model, stored as a new response that later turns continue from."""
        self._server_key_only(principal)
        context: list[dict] = []
        if req.previous_response_id:
            context = (await self.get(principal, req.previous_response_id)).context
        conversation = context + items_to_messages(req.input_items or [])
        if not conversation:
            raise ModelParamInvalid("invalid parameter `input`: there is no conversation to compact")
        self.models.context_window(principal, group, req.model)  # the model must be callable here
        usage: dict = {}

        async def summarize(messages: list[dict], max_tokens: int) -> str:
            if req.instructions:
                messages = [messages[0], {"role": "system", "content": req.instructions}] + messages[1:]
            body = await self.models.complete(principal, group, summary_request(req.model, messages, max_tokens),
                                            request_id)
            usage.update(body.get("usage") or {})
            return (body["choices"][0]["message"].get("content") or "").strip()

        compacted, summary = await compact(conversation, summarize, keep_newest=False)
        item = {"type": "compaction", "id": new_id("cmp"), "encrypted_content": summary or ""}
        body = {"id": new_id("resp"), "object": "response.compaction", "created_at": int(time.time()),
                "output": [item], "usage": response_usage(usage)}
        now = time.time()
        await asyncio.to_thread(save_response, self.store, StoredResponse(
            body["id"], principal.env_id, req.model, req.previous_response_id, now, now + self.ttl, body,
            list(req.input_items or []), compacted))
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
