"""The fake upstream's OpenAI rendering of a scripted Reply: completion bodies and stream events,
with the scripted failure points (shared with the Anthropic rendering)."""
from __future__ import annotations

import time
from typing import Any

import orjson


def openai_error(message: str, kind: str = "upstream_error") -> dict:
    return {"error": {"message": message, "type": kind, "code": kind}}


def sse(obj: dict) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def openai_completion(reply, model: str, prompt: int, pieces: list[str]) -> dict:
    if reply.error:
        return openai_error(reply.error)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces) if pieces or not reply.tool_calls
                               else None}
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    body = {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish()}]}
    if reply.usage:
        body["usage"] = {"prompt_tokens": prompt, "completion_tokens": len(pieces),
                         "total_tokens": prompt + len(pieces), **(reply.usage_extra or {})}
    return body


def openai_stream_events(reply, model: str, prompt: int, include_usage: bool):
    """(kind, bytes) pairs: kind "piece" counts a served token; "stall"/"reset" are actions."""
    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        return sse({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    if reply.role_chunk:
        yield "head", chunk({"role": "assistant", "content": ""})
    if reply.reasoning:
        for part in reply.reasoning.split(" "):
            yield "head", chunk({"reasoning_content": part + " "})
    pieces = reply.pieces()
    for i, piece in enumerate(pieces):
        yield from stream_failure(reply, i)
        yield "piece", chunk({"content": piece})
    yield from stream_failure(reply, len(pieces))
    for n, call in enumerate(reply.tool_calls or []):
        args = call["function"]["arguments"]
        half = len(args) // 2
        yield "head", chunk({"tool_calls": [{"index": n, "id": call["id"], "type": "function", "function": {
            "name": call["function"]["name"], "arguments": args[:half]}}]})
        yield "head", chunk({"tool_calls": [{"index": n, "function": {"arguments": args[half:]}}]})
    yield "head", chunk({}, reply.finish())
    if include_usage:
        yield "head", sse({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": [], "usage": {
                               "prompt_tokens": prompt, "completion_tokens": len(pieces),
                               "total_tokens": prompt + len(pieces), **(reply.usage_extra or {})}})
    yield "done", b"data: [DONE]\n\n"


def stream_failure(reply, sent: int):
    if reply.error_after == sent:
        yield "broken", sse(openai_error(reply.error or "upstream failed mid-stream"))
    if reply.malformed_after == sent:
        yield "broken", b"data: {not json at all\n\n"
    if reply.reset_after == sent:
        yield "reset", b""
    if reply.stall_after == sent:
        yield "stall", b""
