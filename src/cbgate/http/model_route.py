"""The one model route: every surface (chat, Messages, Responses, images, and the next ones) is served
here the same way. The caller is authenticated once (`caller`, the one auth preamble), the body parsed
once by the surface, the model called through the model service (routing, admission, fallback and
metering are the core's), and the answer rendered by the surface: JSON, or its stream through the one
pump. A surface with state (Responses) plugs in a hook that makes the turn before the call and stores
the answer after it."""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from cbgate.core.auth import Principal
from cbgate.core.model_service import ModelService
from cbgate.core.shutdown import ShutdownDeadline
from cbgate.http.exchange import Exchange
from cbgate.http.stream_pump import pump
from cbgate.protocol.surface import Surface, Turn

# (principal, group, parsed request, request id) -> the turn to serve: the Responses surface's hook
TurnHook = Callable[[Principal, str, Any, str], Awaitable[Turn]]


def caller(ex: Exchange, service: ModelService, surface: Surface, group: str | None, max_body_bytes: int) -> Principal:
    """The one auth preamble: an oversized body is refused before anything else, then the key the
    surface reads is authenticated and the group checked, all in the surface's error envelope. A
    surface whose path names no group (the Agent API: the agent's own group is checked once it is
    known) passes None."""
    ex.error_body = surface.error_body
    ex.refuse_declared_size_over(max_body_bytes)
    principal = service.authenticate(surface.credentials(ex.header(b"authorization"), ex.header(b"x-api-key")),
                                     ex.header(b"host"))
    if group is not None:
        service.check_group(principal, group)
    return principal


class ModelRoute:
    def __init__(self, service: ModelService, surface: Surface, max_body_bytes: int, deadline: ShutdownDeadline,
                 turn: TurnHook | None = None):
        self.service = service
        self.surface = surface
        self.max_body_bytes = max_body_bytes
        self.deadline = deadline  # the process's: streams cut at shutdown end with the surface's failure event
        self.turn = turn

    async def __call__(self, ex: Exchange, params: dict) -> None:
        group = params["group"]
        principal = caller(ex, self.service, self.surface, group, self.max_body_bytes)
        req = self.surface.parse(await ex.read_json_object(self.max_body_bytes))
        ex.cancel_on_disconnect()
        turn = (await self.turn(principal, group, req, ex.request_id) if self.turn is not None
                else self.surface.turn(req))
        if self.surface.generates_images:
            answer = await self.service.generate_images(principal, group, turn.request, ex.request_id)
            return await ex.reply_json(self.surface.render(req, answer, ex.request_id))
        if not turn.request.stream:
            answer = await self.service.complete(principal, group, turn.request, ex.request_id)
            body = self.surface.render(req, answer, ex.request_id)
            if turn.after is not None:
                await turn.after(body)
            return await ex.reply_json(body)
        stream = await self.service.open_stream(principal, group, turn.request, ex.request_id)
        await pump(ex, stream, self.surface.stream(req, ex.request_id), self.deadline, turn.after)
