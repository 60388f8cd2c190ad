"""`/v1/ai/<group>/images/generations`: image generation passed through to OpenAI-compatible upstreams."""
from __future__ import annotations

from cbgate.core.chat import ChatService
from cbgate.errors import MethodNotAllowed
from cbgate.http.exchange import Exchange
from cbgate.protocol.images import parse_images_request


class ImagesRoutes:
    def __init__(self, service: ChatService, max_body_bytes: int):
        self.service = service
        self.max_body_bytes = max_body_bytes

    async def generate(self, ex: Exchange, group: str) -> None:
        if ex.scope["method"] != "POST":
            raise MethodNotAllowed(f"{ex.scope['method']} is not allowed here; use POST")
        ex.refuse_declared_size_over(self.max_body_bytes)
        principal = self.service.authenticate(ex.header(b"authorization"), ex.header(b"host"))
        self.service.check_group(principal, group)
        req = parse_images_request(await ex.read_json_object(self.max_body_bytes))
        ex.cancel_on_disconnect()
        ex.metered = True  # from here on the service's meters record the outcome
        await ex.reply_json(await self.service.generate_images(principal, group, req, ex.request_id))
