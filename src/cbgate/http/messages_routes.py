"""`/v1/ai/<group>/v1/messages` (+ `/count_tokens`): the Anthropic Messages surface, JSON or its event stream."""
from __future__ import annotations

import asyncio
import logging

from cbgate.core.auth import Principal, presented_authorization
from cbgate.core.chat import ChatService
from cbgate.core.context import ContextCounter
from cbgate.core.shutdown import ShutdownDeadline
from cbgate.errors import CloudBaseError, InternalError
from cbgate.http import sse
from cbgate.http.exchange import Exchange
from cbgate.protocol.anthropic_messages import (
    MessageStreamRenderer,
    messages_error_body,
    parse_messages_request,
    render_message,
)

log = logging.getLogger("cbgate.http")


class MessagesRoutes:
    def __init__(self, service: ChatService, counter: ContextCounter, max_body_bytes: int,
                 deadline: ShutdownDeadline | None = None):
        self.service = service
        self.counter = counter
        self.max_body_bytes = max_body_bytes
        self.deadline = deadline or ShutdownDeadline(30.0)  # streams cut at shutdown end with an error event

    async def _principal(self, ex: Exchange, group: str) -> Principal:
        ex.error_body = messages_error_body  # every answer of this surface, refusals too
        ex.refuse_declared_size_over(self.max_body_bytes)
        principal = self.service.authenticate(
            presented_authorization(ex.header(b"authorization"), ex.header(b"x-api-key")), ex.header(b"host"))
        self.service.check_group(principal, group)
        return principal

    async def count_tokens(self, ex: Exchange, group: str) -> None:
        principal = await self._principal(ex, group)
        body = await ex.read_json_object(self.max_body_bytes)
        req = parse_messages_request({"max_tokens": 1, **body})
        self.service.context_window(principal, group, req.model)  # the model must be callable here
        await ex.reply_json({"input_tokens": await self.counter.tokens(req.messages)})

    async def create(self, ex: Exchange, group: str) -> None:
        principal = await self._principal(ex, group)
        req = parse_messages_request(await ex.read_json_object(self.max_body_bytes))
        req.surface = "messages"
        ex.cancel_on_disconnect()
        ex.metered = True  # from here on the service's meters record the outcome
        if not req.stream:
            body = await self.service.complete(principal, group, req, ex.request_id)
            return await ex.reply_json(render_message(body, ex.request_id))
        chunks = await self.service.open_stream(principal, group, req, ex.request_id)
        renderer = MessageStreamRenderer(req.model, ex.request_id)
        untrack = self.deadline.track(chunks.meter)
        try:
            await ex.start(200, sse.SSE_HEADERS)
            async for chunk in chunks:
                events = renderer.feed(chunk)
                if events:
                    await ex.send({"type": "http.response.body", "body": sse.named_events(events), "more_body": True})
            tail = sse.named_events(renderer.finish_events())
        except CloudBaseError as err:
            tail = sse.named_event("error", messages_error_body(err, ex.request_id))
        except asyncio.CancelledError:
            if chunks.meter.cut is None:
                raise  # the client left
            asyncio.current_task().uncancel()  # the shutdown deadline: the client still gets told why
            tail = sse.named_event("error", messages_error_body(chunks.meter.cut, ex.request_id))
        except Exception:
            log.exception("messages stream %s failed", ex.request_id)
            tail = sse.named_event("error", messages_error_body(InternalError("the stream failed inside the gateway"),
                                                                ex.request_id))
        finally:
            untrack()
            await chunks.aclose()
        await ex.send({"type": "http.response.body", "body": tail, "more_body": False})
