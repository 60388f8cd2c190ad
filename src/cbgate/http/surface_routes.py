"""`/v1/ai/<group>/<path>`: the path picks the protocol, as CloudBase routes it (chat completions and the
model listing, Anthropic Messages, OpenAI Responses, image generation)."""
from __future__ import annotations

from cbgate.errors import MethodNotAllowed
from cbgate.http.chat_routes import ChatRoutes
from cbgate.http.exchange import Exchange
from cbgate.http.images_routes import ImagesRoutes
from cbgate.http.messages_routes import MessagesRoutes
from cbgate.http.responses_routes import ResponsesRoutes
from cbgate.protocol.anthropic_messages import messages_error_body

IMAGES_TAILS = (("images", "generations"), ("v1", "images", "generations"),
                ("images", "ar", "generations"))  # @cloudbase/ai's createImageModel for Hunyuan's AR models

# The paths @cloudbase/ai's createModel(name) posts chat completions to (its MODELS map), each served by the
# group of that name; the other providers use chat/completions or v1/chat/completions, served for every group.
SDK_CHAT_TAILS = {
    "ark": ("api", "v3", "chat", "completions"),
    "dashscope": ("compatible-mode", "v1", "chat", "completions"),
    "zhipu": ("api", "paas", "v4", "chat", "completions"),
    "hunyuan-beta": ("openapi", "v1", "chat", "completions"),
    "hunyuan": (),  # Tencent Cloud API style: the answer comes back inside {"Response": ...}
}
USAGE_ON_LAST_TEXT = ("01-ai",)  # the SDK's stream reader for these drops chunks without text


class SurfaceRoutes:
    def __init__(self, chat: ChatRoutes, messages: MessagesRoutes, responses: ResponsesRoutes, images: ImagesRoutes):
        self.chat = chat
        self.messages = messages
        self.responses = responses
        self.images = images

    async def handle(self, ex: Exchange, group: str, tail: tuple[str, ...]) -> None:
        if tail[:2] == ("v1", "messages") and len(tail) <= 3:
            ex.error_body = messages_error_body  # Anthropic's envelope, for this path's every refusal
            if ex.scope["method"] != "POST":
                raise MethodNotAllowed(f"{ex.scope['method']} is not allowed here; use POST")
            if tail[2:] == ("count_tokens",):
                return await self.messages.count_tokens(ex, group)
            if len(tail) == 2:
                return await self.messages.create(ex, group)
        if tail[:1] == ("responses",) and len(tail) <= 3:
            return await self.responses.handle(ex, group, tail[1:])
        if tail[:2] == ("v1", "responses") and len(tail) <= 4:
            return await self.responses.handle(ex, group, tail[2:])
        if tail in IMAGES_TAILS:
            return await self.images.generate(ex, group)
        if tail and SDK_CHAT_TAILS.get(group) == tail:
            return await self.chat.handle(ex, group, ("chat", "completions"))
        if not tail and SDK_CHAT_TAILS.get(group) == ():
            return await self.chat.handle(ex, group, ("chat", "completions"), sdk_quirk="tencent_envelope")
        if group in USAGE_ON_LAST_TEXT and tail[-2:] == ("chat", "completions"):
            return await self.chat.handle(ex, group, tail, sdk_quirk="usage_on_last_text")
        return await self.chat.handle(ex, group, tail)
