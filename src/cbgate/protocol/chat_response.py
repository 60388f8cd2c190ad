"""OpenAI chat completion bodies and stream chunks, built as plain dicts for one fast dump."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0  # all input billed, cached and cache-writing input included
    completion_tokens: int = 0
    estimated: bool = False
    cache_creation_tokens: int = 0  # of the prompt: written to the upstream's prompt cache (Anthropic)
    cache_read_tokens: int = 0  # of the prompt: read from it

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict:
        body = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}
        if self.cache_read_tokens or self.cache_creation_tokens:  # OpenAI's field, and the write count beside it
            body["prompt_tokens_details"] = {"cached_tokens": self.cache_read_tokens,
                                             "cache_creation_tokens": self.cache_creation_tokens}
        return body


def new_completion_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


class ChunkFactory:
    """Stamps id, created and model on every chunk of one response. The id is made when first asked for:
    an upstream's non-streamed answer keeps its own, and a stream takes the upstream's (a random id and its
    system call for every request, unused)."""
    __slots__ = ("model", "_id", "created")

    def __init__(self, model: str, id: str = "", created: int = 0):
        self.model = model
        self._id = id
        self.created = created or int(time.time())

    @property
    def id(self) -> str:
        if not self._id:
            self._id = new_completion_id()
        return self._id

    @id.setter
    def id(self, value: str) -> None:
        self._id = value

    def chunk(self, delta: dict, finish_reason: str | None = None) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    def usage_chunk(self, usage: Usage) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [], "usage": usage.as_dict()}

    def completion(self, message: dict, finish_reason: str, usage: Usage) -> dict:
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                "usage": usage.as_dict()}


def models_list(names: list[str], owner: str, created: int) -> dict:
    return {"object": "list",
            "data": [{"id": n, "object": "model", "created": created, "owned_by": owner} for n in names]}
