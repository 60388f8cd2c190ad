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

IMAGES_TAILS = (("images", "generations"), ("v1", "images", "generations"))


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
        return await self.chat.handle(ex, group, tail)
