"""`/v1/ai/<group>/responses`: create (JSON or the Responses event stream), retrieve, list input items,
delete and compact stored responses."""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs

from cbgate.core.responses import ResponsesService
from cbgate.core.shutdown import ShutdownDeadline
from cbgate.errors import (
    CloudBaseError,
    InternalError,
    InvalidParam,
    InvalidPath,
    MethodNotAllowed,
    ModelParamInvalid,
    ModelParamRequired,
)
from cbgate.http import sse
from cbgate.http.exchange import Exchange
from cbgate.protocol.responses_request import check_stored_names, parse_responses_request

MAX_LIST = 100

log = logging.getLogger("cbgate.http")


def _allow(ex: Exchange, *methods: str) -> str:
    method = ex.scope["method"]
    if method not in methods:
        raise MethodNotAllowed(f"{method} is not allowed here; use {' or '.join(methods)}")
    return method


class ResponsesRoutes:
    def __init__(self, service: ResponsesService, max_body_bytes: int, deadline: ShutdownDeadline | None = None):
        self.service = service
        self.chat = service.chat
        self.max_body_bytes = max_body_bytes
        self.deadline = deadline or ShutdownDeadline(30.0)  # streams cut at shutdown end with failure events

    async def handle(self, ex: Exchange, group: str, rest: tuple[str, ...]) -> None:
        """`rest` is the path after `responses`: (), (id,), (id, "input_items"), (id, "compact"), ("compact",)."""
        ex.refuse_declared_size_over(self.max_body_bytes)
        principal = self.chat.authenticate(ex.header(b"authorization"), ex.header(b"host"))
        self.chat.check_group(principal, group)
        if rest == ():
            _allow(ex, "POST")
            return await self.create(ex, principal, group)
        if rest == ("compact",) or (len(rest) == 2 and rest[1] == "compact"):
            _allow(ex, "POST")
            return await self.compact(ex, principal, group, rest[0] if len(rest) == 2 else None)
        if len(rest) == 1:
            if _allow(ex, "GET", "DELETE") == "DELETE":
                return await ex.reply_json(await self.service.delete(principal, rest[0]))
            return await ex.reply_json((await self.service.get(principal, rest[0])).body)
        if len(rest) == 2 and rest[1] == "input_items":
            _allow(ex, "GET")
            stored = await self.service.get(principal, rest[0])
            return await ex.reply_json(input_items_page(stored.input_items, ex.scope.get("query_string", b"")))
        raise InvalidPath(f"no such path: {ex.scope['path']}")

    async def create(self, ex: Exchange, principal, group: str) -> None:
        req = parse_responses_request(await ex.read_json_object(self.max_body_bytes))
        ex.cancel_on_disconnect()
        ex.metered = True  # from here on the service's meters record the outcome
        if not req.stream:
            return await ex.reply_json(await self.service.create(principal, group, req, ex.request_id))
        stream = await self.service.open_stream(principal, group, req, ex.request_id)
        untrack = self.deadline.track(stream.meter)
        tail = b""
        try:
            await ex.start(200, sse.SSE_HEADERS)
            async for name, data in stream.events:
                await ex.send({"type": "http.response.body", "body": sse.named_event(name, data), "more_body": True})
        except CloudBaseError as err:
            tail = sse.named_events(stream.renderer.failure_events(err, ex.request_id))
        except asyncio.CancelledError:
            if stream.meter.cut is None:
                raise  # the client left
            asyncio.current_task().uncancel()  # the shutdown deadline: the client still gets told why
            tail = sse.named_events(stream.renderer.failure_events(stream.meter.cut, ex.request_id))
        except Exception:
            log.exception("responses stream %s failed", ex.request_id)
            tail = sse.named_events(stream.renderer.failure_events(
                InternalError("the stream failed inside the gateway"), ex.request_id))
        finally:
            untrack()
            await stream.aclose()  # the model stream too, even when no event was ever asked for
        await ex.send({"type": "http.response.body", "body": tail, "more_body": False})

    async def compact(self, ex: Exchange, principal, group: str, response_id: str | None) -> None:
        body = await ex.read_json_object(self.max_body_bytes)
        check_stored_names({**body, "previous_response_id": response_id or body.get("previous_response_id")})
        model = body["model"]
        previous = response_id or body.get("previous_response_id")
        items = None
        if body.get("input") is not None:
            items = parse_responses_request({"model": model, "input": body["input"]}).input_items
        if previous is None and items is None:
            raise ModelParamRequired("`previous_response_id` or `input` is required")
        instructions = body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise ModelParamInvalid("invalid parameter `instructions`: must be a string")
        ex.cancel_on_disconnect()
        ex.metered = True  # from here on the service's meters record the outcome
        await ex.reply_json(await self.service.compact(principal, group, model, ex.request_id,
                                                       previous_response_id=previous, input_items=items,
                                                       instructions=instructions))


def input_items_page(items: list[dict], query_string: bytes) -> dict:
    """OpenAI's list shape, newest first unless `order=asc`, `limit` (1-100, 20) and `after` an item id."""
    query = {k: v[-1] for k, v in parse_qs(query_string.decode("latin-1")).items()}
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidParam("`order` must be asc or desc")
    try:
        limit = int(query.get("limit", 20))
    except ValueError:
        raise InvalidParam("`limit` must be an integer") from None
    if not 1 <= limit <= MAX_LIST:
        raise InvalidParam(f"`limit` must be between 1 and {MAX_LIST}")
    ordered = list(items) if order == "asc" else list(reversed(items))
    after = query.get("after")
    if after is not None:
        ids = [i.get("id") for i in ordered]
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    page = ordered[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(ordered) > limit}
