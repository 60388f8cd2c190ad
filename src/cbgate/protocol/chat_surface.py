"""Chat completions (OpenAI's wire format) as a surface: the body is the canonical request already, the
answer goes out as it is, and a stream is `data:` events ended by `[DONE]` (or an error event, and no
`[DONE]`, when it breaks after its 200)."""
from __future__ import annotations

from cbgate.errors import CloudBaseError
from cbgate.protocol import sse
from cbgate.protocol.chat_request import ChatRequest, parse_chat_request
from cbgate.protocol.surface import Surface


class ChatStream:
    __slots__ = ("request_id",)

    def __init__(self, request_id: str):
        self.request_id = request_id

    def start(self) -> bytes:
        return b""

    feed = staticmethod(sse.event)  # (chunk) -> its `data:` event; called per event, so no method around it
    feed_batch = staticmethod(sse.events)  # a model stream's batch, framed at once

    def finish(self) -> bytes:
        return sse.DONE

    def failure(self, err: CloudBaseError) -> bytes:
        return sse.error_event(err, self.request_id)


class ChatSurface(Surface[ChatRequest]):
    name = "chat"

    def parse(self, body: dict) -> ChatRequest:
        return parse_chat_request(body)

    def stream(self, req: ChatRequest, request_id: str) -> ChatStream:
        return ChatStream(request_id)


CHAT = ChatSurface()


class LastTextUsageSurface(ChatSurface):
    """Chat completions for @cloudbase/ai's 01-ai reader, which drops every chunk without text (the
    finishing one included): the stream's last chunk with text carries the usage too."""

    def parse(self, body: dict) -> ChatRequest:
        req = parse_chat_request(body)
        req.usage_on_last_text = True
        return req


class TencentChatSurface(ChatSurface):
    """Chat completions as Tencent Cloud API answers them (`hunyuan` in @cloudbase/ai): the JSON answer
    inside `Response`, in TitleCase, which the SDK turns back into snake_case."""

    def render(self, req: ChatRequest, answer: dict, request_id: str) -> dict:
        return tencent_response(answer, request_id)


def tencent_response(body: dict, request_id: str) -> dict:
    def title(value):
        if isinstance(value, dict):
            return {"".join(p[:1].upper() + p[1:] for p in k.split("_")): title(v) for k, v in value.items()}
        return [title(v) for v in value] if isinstance(value, list) else value
    return {"Response": {**title(body), "RequestId": request_id}}


LAST_TEXT_USAGE = LastTextUsageSurface()
TENCENT_CHAT = TencentChatSurface()
