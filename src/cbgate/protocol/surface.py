"""The surface contract: everything the edge needs to know about one client protocol, and nothing about
sockets. A surface reads the caller's credentials, parses a body into the one typed request the core
serves (validated once, with errors that name the client's own fields), and renders an answer, a
stream of events and its error envelope. `http/model_route.py` drives every surface the same way, so
adding a protocol is one `Surface` and one row in `http/routes.py`'s table (docs/architecture.md).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, Protocol, TypeVar

from cbgate.errors import CloudBaseError, error_body
from cbgate.protocol.chat_request import ChatRequest

Parsed = TypeVar("Parsed")  # the surface's own typed request (a ChatRequest for most)


def presented_authorization(authorization: str | None, api_key: str | None) -> str | None:
    """The credential a client presented, as an Authorization value: `Authorization: Bearer` (CloudBase's
    way, the Anthropic SDK's auth_token) or else `x-api-key` (the Anthropic SDK's api_key). CORS and
    authentication both read the key through this one rule: a key that one of them missed would let a page
    on an origin some other environment allows use this key's environment."""
    if authorization:
        return authorization
    return f"Bearer {api_key}" if api_key else None


class StreamRender(Protocol):
    """One stream's wire format. The pump feeds it what the stream yields (canonical chunks for the
    model surfaces; any surface's own typed events, such as AG-UI's) and writes the framed bytes it
    returns; b"" writes nothing. `start` goes out before the first item, then exactly one of `finish`
    (the stream ended) or `failure` (it broke after its 200: the error travels inside the stream). A render
    may also have `feed_batch(items) -> bytes`, which the pump then uses for a batch instead of a `feed` each."""

    def start(self) -> bytes: ...

    def feed(self, item: Any) -> bytes: ...

    def finish(self) -> bytes: ...

    def failure(self, err: CloudBaseError) -> bytes: ...


@dataclass(slots=True)
class Turn:
    """What one call to the model serves: the canonical request, and what to do with the rendered answer
    once it was served whole (the Responses surface stores it). A surface without hooks has
    `Turn(request)`."""
    request: ChatRequest
    after: Callable[[dict], Awaitable[None]] | None = None


class Surface(ABC, Generic[Parsed]):
    """The contract a protocol fulfils: `parse` and `stream` are each surface's own (a surface that lacks
    one cannot be made); the other methods default to chat completions' (OpenAI's wire format)."""
    name = "chat"  # the ledger's surface label, and the request's
    api_key_header = False  # the key may also come as `x-api-key` (Anthropic SDKs)
    generates_images = False  # the model call is an image generation, not a completion

    def credentials(self, authorization: str | None, api_key: str | None) -> str | None:
        """The credential presented, as an Authorization value."""
        return presented_authorization(authorization, api_key if self.api_key_header else None)

    @abstractmethod
    def parse(self, body: dict) -> Parsed:
        """The body validated once into the surface's typed request; every error names the client's field."""

    def turn(self, req: Parsed) -> Turn:
        """The model call a parsed request makes, for a surface without hooks."""
        return Turn(req)

    def render(self, req: Parsed, answer: dict, request_id: str) -> dict:
        """The JSON answer, from the canonical completion (or an images body)."""
        return answer

    @abstractmethod
    def stream(self, req: Parsed, request_id: str) -> StreamRender:
        """The wire format of the stream a request that asked for one is answered with."""

    def error_body(self, err: CloudBaseError, request_id: str) -> dict:
        return error_body(err, request_id)
