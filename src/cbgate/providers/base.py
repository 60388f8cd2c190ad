"""The contract every provider adapter keeps.

`complete(call)` returns one finished answer; `stream(call, outcome)` yields batches: non-empty lists of
chunks (`protocol/chunks.py`: OpenAI chunks as dicts or ready JSON bytes, or the client's own protocol's
events), one batch for what one network read brought, so the events of a read cost the pipeline one step, not
one each. It fills `outcome` as it goes, so the caller can meter usage however the stream ends; its
`finish_reason` is set before the batch holding the finishing chunk is yielded (the model service holds that
chunk back by it, to send it with the usage). Adapters never emit usage chunks themselves: the model service
does, once. Failures are raised as errors of `cbgate.errors`, after the batch of what came before them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol

from cbgate.protocol.chat_request import ChatRequest
from cbgate.protocol.chunks import Chunk
from cbgate.protocol.chat_response import ChunkFactory, Usage


@dataclass(slots=True)
class ModelCall:
    request: ChatRequest
    chunks: ChunkFactory  # stamps the public model name, id and created time
    request_id: str
    tenant: str = ""  # the environment asking (the embedded engine's queue takes turns between them)


@dataclass(slots=True)
class Completion:
    body: dict  # the canonical completion (metering reads it)
    usage: Usage
    native: dict | None = None  # the answer in the client's own protocol, when the upstream speaks it


@dataclass(slots=True)
class StreamOutcome:
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    first_token_at: float | None = None
    # the first chunk that finished, as the adapter yielded it, when the adapter says which (the model service
    # finds it by identity instead of reading every chunk of its batch)
    finishing: object | None = None

    def mark_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an adapter can do beyond chat (read by the model service when it picks a deployment)."""
    image_generation: bool = False  # serves `generate_images(call)` (OpenAI's images/generations)
    default_max_tokens: int | None = None  # what it generates at most for a request naming no max_tokens


@dataclass(frozen=True, slots=True)
class Inputs:
    """The parts of a message besides text that a deployment reads, as its operator declared them (the config
    file's deployment, or a custom group): True reads them; False does not, and a request carrying them is
    refused or sent to a deployment that does (core/inputs.py); None was not declared, and the parts go up
    as sent, for the upstream to answer for itself (how every upstream was served before declarations)."""
    vision: bool | None = None  # image parts: chat's image_url, Messages' image, Responses' input_image
    audio_input: bool | None = None  # chat's input_audio parts


UNDECLARED = Inputs()
TEXT_ONLY = Inputs(vision=False, audio_input=False)


class Provider(Protocol):
    name: str
    capabilities: Capabilities
    inputs: Inputs

    async def complete(self, call: ModelCall) -> Completion: ...

    def stream(self, call: ModelCall, outcome: StreamOutcome) -> AsyncIterator[list[Chunk]]: ...

    async def close(self) -> None: ...
