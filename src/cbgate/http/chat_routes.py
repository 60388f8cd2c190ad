"""`/v1/ai/<group>/...`: chat completions (JSON or SSE) and the model listing."""
from __future__ import annotations

import asyncio
import logging

from cbgate.core.chat import ChatService
from cbgate.core.shutdown import ShutdownDeadline
from cbgate.errors import CloudBaseError, InternalError, InvalidPath, MethodNotAllowed
from cbgate.http import sse
from cbgate.http.coalesce import CoalescedChunks
from cbgate.http.exchange import Exchange
from cbgate.http.paths import path_hint
from cbgate.protocol.chat_request import parse_chat_request

log = logging.getLogger("cbgate.http")

CHAT_TAILS = (("chat", "completions"), ("v1", "chat", "completions"))
MODELS_TAILS = (("models",), ("v1", "models"))


class ChatRoutes:
    def __init__(self, service: ChatService, max_body_bytes: int, deadline: ShutdownDeadline | None = None):
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.deadline = deadline or ShutdownDeadline(30.0)

    async def handle(self, ex: Exchange, group: str, tail: tuple[str, ...], sdk_quirk: str = "") -> None:
        method = ex.scope["method"]
        if tail in CHAT_TAILS:
            if method != "POST":
                raise MethodNotAllowed(f"{method} is not allowed here; use POST")
            return await self.chat(ex, group, sdk_quirk)
        if tail in MODELS_TAILS or (len(tail) in (2, 3) and tail[-2] == "models" and tail[:-2] in ((), ("v1",))):
            if method != "GET":
                raise MethodNotAllowed(f"{method} is not allowed here; use GET")
            return await self.models(ex, group, tail[-1] if tail[-2:-1] == ("models",) else None)
        raise InvalidPath(f"no such path: {ex.scope['path']}{path_hint(ex.scope['path'])}")

    async def models(self, ex: Exchange, group: str, model: str | None) -> None:
        principal = self.service.authenticate(ex.header(b"authorization"), ex.header(b"host"))
        listing = self.service.list_models(principal, group)
        if model is None:
            return await ex.reply_json(listing)
        found = next((m for m in listing["data"] if m["id"] == model), None)
        if found is None:
            raise InvalidPath(f"model {model!r} is not enabled in group {group!r}")
        await ex.reply_json(found)

    async def chat(self, ex: Exchange, group: str, sdk_quirk: str = "") -> None:
        """`sdk_quirk` names what @cloudbase/ai's reader for this path needs (see surface_routes)."""
        ex.refuse_declared_size_over(self.max_body_bytes)
        principal = self.service.authenticate(ex.header(b"authorization"), ex.header(b"host"))
        self.service.check_group(principal, group)
        req = parse_chat_request(await ex.read_json_object(self.max_body_bytes))
        req.usage_on_last_text = sdk_quirk == "usage_on_last_text"
        ex.cancel_on_disconnect()
        ex.metered = True  # from here on the service's meter records the outcome, whatever it is
        if not req.stream:
            body = await self.service.complete(principal, group, req, ex.request_id)
            return await ex.reply_json(tencent_response(body, ex.request_id) if sdk_quirk == "tencent_envelope" else body)
        # the events of one upstream read leave in one write: a write per event held bench/ to ~1,500
        # streams/s, coalesced it does ~2,600
        stream = await self.service.open_stream(principal, group, req, ex.request_id)
        chunks = CoalescedChunks(stream, sse.event)
        untrack = self.deadline.track(stream.meter)
        try:
            await ex.start(200, sse.SSE_HEADERS)  # in the try: the stream is closed (and metered) come what may
            async for events in chunks.batches():
                await ex.send({"type": "http.response.body", "body": events, "more_body": True})
            tail = sse.DONE
        except CloudBaseError as err:
            tail = sse.error_event(err, ex.request_id)
        except asyncio.CancelledError:
            if stream.meter.cut is None:
                raise  # the client left
            asyncio.current_task().uncancel()  # the shutdown deadline: the client still gets told why
            tail = sse.error_event(stream.meter.cut, ex.request_id)
        except Exception:
            log.exception("stream %s failed", ex.request_id)
            tail = sse.error_event(InternalError("the stream failed inside the gateway"), ex.request_id)
        finally:
            untrack()
            await chunks.aclose()
        await ex.send({"type": "http.response.body", "body": tail, "more_body": False})


def tencent_response(body: dict, request_id: str) -> dict:
    """A chat completion as Tencent Cloud API answers it (`hunyuan` in @cloudbase/ai): TitleCase keys inside
    `Response`, which the SDK turns back into snake_case."""
    def title(value):
        if isinstance(value, dict):
            return {"".join(p[:1].upper() + p[1:] for p in k.split("_")): title(v) for k, v in value.items()}
        return [title(v) for v in value] if isinstance(value, list) else value
    return {"Response": {**title(body), "RequestId": request_id}}
