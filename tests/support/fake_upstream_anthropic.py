"""The fake upstream's Anthropic Messages rendering of a scripted Reply (bodies and stream events)."""
from __future__ import annotations

from typing import Any

import orjson

from tests.support.fake_upstream_openai import stream_failure

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def error(message: str, kind: str = "api_error") -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _tool_input(call: dict) -> Any:
    return orjson.loads(call["function"]["arguments"] or "{}")


def message(reply, model: str, prompt: int, pieces: list[str]) -> dict:
    if reply.error:
        return error(reply.error)
    content: list[dict] = []
    if reply.reasoning is not None:
        content.append({"type": "thinking", "thinking": reply.reasoning, "signature": "sig-fake"})
    if pieces:
        content.append({"type": "text", "text": "".join(pieces)})
    for call in reply.tool_calls or []:
        content.append({"type": "tool_use", "id": call["id"], "name": call["function"]["name"],
                        "input": _tool_input(call)})
    body = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": STOP_REASONS.get(reply.finish(), reply.finish()), "stop_sequence": None}
    body["usage"] = ({"input_tokens": prompt, "output_tokens": len(pieces), **(reply.usage_extra or {})}
                     if reply.usage else {"input_tokens": 0, "output_tokens": 0})
    return body


def event(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def stream_events(reply, model: str, prompt: int):
    """(kind, bytes) pairs in the Messages streaming format; kinds as in the OpenAI rendering."""
    usage_in = prompt if reply.usage else 0
    yield "head", event("message_start", {"type": "message_start", "message": {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": usage_in, "output_tokens": 1, **(reply.usage_extra or {})}}})
    yield "head", event("ping", {"type": "ping"})
    index = 0
    if reply.reasoning:
        yield "head", event("content_block_start", {"type": "content_block_start", "index": index,
                                                    "content_block": {"type": "thinking", "thinking": ""}})
        for part in reply.reasoning.split(" "):
            yield "head", event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                        "delta": {"type": "thinking_delta", "thinking": part + " "}})
        yield "head", event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                    "delta": {"type": "signature_delta", "signature": "sig"}})
        yield "head", event("content_block_stop", {"type": "content_block_stop", "index": index})
        index += 1
    pieces = reply.pieces()
    yield "head", event("content_block_start", {"type": "content_block_start", "index": index,
                                                "content_block": {"type": "text", "text": ""}})
    for i, piece in enumerate(pieces):
        for kind, payload in stream_failure(reply, i):
            yield kind, (event("error", error(reply.error or "overloaded", "overloaded_error"))
                         if kind == "broken" and reply.error_after == i else payload)
        yield "piece", event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                     "delta": {"type": "text_delta", "text": piece}})
    for kind, payload in stream_failure(reply, len(pieces)):
        yield kind, (event("error", error(reply.error or "overloaded", "overloaded_error"))
                     if kind == "broken" and reply.error_after == len(pieces) else payload)
    yield "head", event("content_block_stop", {"type": "content_block_stop", "index": index})
    for call in reply.tool_calls or []:
        index += 1
        args = call["function"]["arguments"]
        half = len(args) // 2
        yield "head", event("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
            "type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": {}}})
        for part in (args[:half], args[half:]):
            yield "head", event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                        "delta": {"type": "input_json_delta", "partial_json": part}})
        yield "head", event("content_block_stop", {"type": "content_block_stop", "index": index})
    yield "head", event("message_delta", {"type": "message_delta", "delta": {
        "stop_reason": STOP_REASONS.get(reply.finish(), reply.finish()), "stop_sequence": None},
        "usage": {"output_tokens": len(pieces) if reply.usage else 0}})
    yield "done", event("message_stop", {"type": "message_stop"})
