"""What the model surfaces serve besides a model call: the model listing (chat), token counting
(Messages), and stored responses (Responses: retrieve, list input items, delete, compact). Each starts
with the model route's one auth preamble, in its surface's envelope."""
from __future__ import annotations

from urllib.parse import parse_qs

from cbgate.core.context import ContextCounter
from cbgate.core.model_service import ModelService
from cbgate.core.responses import ResponsesService
from cbgate.errors import InvalidParam, InvalidPath
from cbgate.http.exchange import Exchange
from cbgate.http.model_route import caller
from cbgate.protocol.anthropic_messages import MESSAGES, parse_messages_request
from cbgate.protocol.chat_surface import CHAT
from cbgate.protocol.responses_render import RESPONSES
from cbgate.protocol.responses_request import parse_compact_request

MAX_LIST = 100


class ModelResources:
    def __init__(self, service: ModelService, responses: ResponsesService, counter: ContextCounter,
                 max_body_bytes: int):
        self.service = service
        self.responses = responses
        self.counter = counter
        self.max_body_bytes = max_body_bytes

    async def models(self, ex: Exchange, params: dict) -> None:
        principal = caller(ex, self.service, CHAT, params["group"], self.max_body_bytes)
        listing = self.service.list_models(principal, params["group"])
        model = params.get("model")
        if model is None:
            return await ex.reply_json(listing)
        found = next((m for m in listing["data"] if m["id"] == model), None)
        if found is None:
            raise InvalidPath(f"model {model!r} is not enabled in group {params['group']!r}")
        await ex.reply_json(found)

    async def count_tokens(self, ex: Exchange, params: dict) -> None:
        principal = caller(ex, self.service, MESSAGES, params["group"], self.max_body_bytes)
        body = await ex.read_json_object(self.max_body_bytes)
        req = parse_messages_request({"max_tokens": 1, **body})
        self.service.context_window(principal, params["group"], req.model)  # the model must be callable here
        await ex.reply_json({"input_tokens": await self.counter.tokens(req.messages)})

    async def get_response(self, ex: Exchange, params: dict) -> None:
        principal = caller(ex, self.service, RESPONSES, params["group"], self.max_body_bytes)
        await ex.reply_json((await self.responses.get(principal, params["id"])).body)

    async def delete_response(self, ex: Exchange, params: dict) -> None:
        principal = caller(ex, self.service, RESPONSES, params["group"], self.max_body_bytes)
        await ex.reply_json(await self.responses.delete(principal, params["id"]))

    async def input_items(self, ex: Exchange, params: dict) -> None:
        principal = caller(ex, self.service, RESPONSES, params["group"], self.max_body_bytes)
        stored = await self.responses.get(principal, params["id"])
        await ex.reply_json(input_items_page(stored.input_items, ex.scope.get("query_string", b"")))

    async def compact(self, ex: Exchange, params: dict) -> None:
        principal = caller(ex, self.service, RESPONSES, params["group"], self.max_body_bytes)
        req = parse_compact_request(await ex.read_json_object(self.max_body_bytes), params.get("id"))
        ex.cancel_on_disconnect()
        await ex.reply_json(await self.responses.compact(principal, params["group"], req, ex.request_id))


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
