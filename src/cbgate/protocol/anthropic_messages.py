"""The inbound Anthropic Messages surface: a Messages request validated into the canonical ChatRequest,
and the canonical answer (an OpenAI completion or chunk stream) rendered back as a Message, its event
stream and Anthropic's error envelope. The mapping itself is `anthropic_wire`'s, shared with the
Anthropic upstream adapter.
"""
from __future__ import annotations

from typing import Any

import orjson

from cbgate.errors import CloudBaseError, ModelParamInvalid, ModelParamRequired, error_body
from cbgate.protocol.anthropic_wire import FINISH_REASONS, to_chat_body, usage_as_messages
from cbgate.protocol import sse
from cbgate.protocol.chat_request import MAX_STOPS, ChatRequest, check_name, parse_chat_request
from cbgate.protocol.chunks import NativeEvent
from cbgate.protocol.surface import Surface

ROLES = ("user", "assistant")
BLOCK_TYPES = frozenset({"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "document",
                         "server_tool_use", "web_search_tool_result", "search_result"})
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large",
               429: "rate_limit_error", 504: "timeout_error"}


def _invalid(name: str, why: str) -> ModelParamInvalid:
    return ModelParamInvalid(f"invalid parameter `{name}`: {why}")


def _check_names(block: dict, names: tuple[str, ...], where: str) -> None:
    """Ids and names as the canonical request bounds them, named as the client sent them."""
    for name in names:
        if block.get(name) is not None:
            check_name(block[name], f"{where}.{name}")


def _check_image(source: Any, where: str) -> None:
    if not isinstance(source, dict):
        raise _invalid(where, "must be an object")
    if source.get("type") == "base64":
        if not isinstance(source.get("data"), str) or not source["data"]:
            raise _invalid(f"{where}.data", "must carry the image's base64 data")
    elif not isinstance(source.get("url"), str) or not source["url"]:
        raise _invalid(f"{where}.url", "must carry a url")


def _check_blocks(where: str, content: Any) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid(where, "must be a string or a list of content blocks")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            raise _invalid(f"{where}[{j}]", "must be a content block with a known type")
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            raise _invalid(f"{where}[{j}].text", "must be a string")
        if block["type"] == "tool_use":
            if not isinstance(block.get("input", {}), dict):
                raise _invalid(f"{where}[{j}].input", "must be an object")
            _check_names(block, ("id", "name"), f"{where}[{j}]")
        if block["type"] == "image":
            _check_image(block.get("source"), f"{where}[{j}].source")
        if block["type"] == "tool_result":
            _check_names(block, ("tool_use_id",), f"{where}[{j}]")
            if block.get("content") is not None:
                _check_blocks(f"{where}[{j}].content", block["content"])  # the translation joins its text
        if block["type"] == "thinking":
            for name in ("thinking", "signature"):
                if block.get(name) is not None and not isinstance(block[name], str):
                    raise _invalid(f"{where}[{j}].{name}", "must be a string")


def _check(body: dict) -> None:
    if not body.get("model"):
        raise ModelParamRequired("`model` is required")
    if not isinstance(body["model"], str):
        raise _invalid("model", "must be a string")
    if body.get("max_tokens") is None:
        raise ModelParamRequired("`max_tokens` is required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages", "must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise _invalid(f"messages[{i}].role", "must be user or assistant")
        _check_blocks(f"messages[{i}].content", message.get("content"))
    system = body.get("system")
    if system is not None:
        _check_blocks("system", system)
    for name, kind in (("tools", list), ("tool_choice", dict), ("metadata", dict), ("thinking", dict),
                       ("stop_sequences", list)):
        if body.get(name) is not None and not isinstance(body[name], kind):
            raise _invalid(name, f"must be {'a list' if kind is list else 'an object'}")
    stops = body.get("stop_sequences")
    if stops is not None and (len(stops) > MAX_STOPS or not all(isinstance(x, str) and x for x in stops)):
        raise _invalid("stop_sequences", f"must be a list of up to {MAX_STOPS} non-empty strings")
    if not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in body.get("tools") or ()):
        raise _invalid("tools", "each tool needs a name")
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise _invalid("top_k", "must be a non-negative integer")


def parse_messages_request(body: dict) -> ChatRequest:
    """Validate a Messages body (Anthropic's field names in every message) into the canonical request,
    which keeps the body itself for Anthropic upstreams (cache_control, thinking, ...). `_check` checks every
    field the canonical request bounds, so that no error names a chat field the client never sent."""
    _check(body)
    req = parse_chat_request(to_chat_body(body))
    req.anthropic_body = body
    req.include_usage = req.stream  # message_delta carries the usage
    return req


def message_id(request_id: str) -> str:
    """Our own id (the request's), so that each message has a distinct one whatever the upstream sent."""
    return "msg_" + request_id


def _stop_reason(finish: str | None) -> str:
    return FINISH_REASONS.get(finish or "stop", "end_turn")


def render_message(completion: dict, request_id: str) -> dict:
    """A Message from the canonical completion."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict] = []
    if message.get("reasoning_content"):
        content.append({"type": "thinking", "thinking": message["reasoning_content"], "signature": ""})
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {"arguments": function.get("arguments")}
        content.append({"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""),
                        "input": arguments})
    return {"id": message_id(request_id), "type": "message", "role": "assistant",
            "model": completion.get("model", ""), "content": content,
            "stop_reason": _stop_reason(choice.get("finish_reason")), "stop_sequence": None,
            "usage": usage_as_messages(completion.get("usage"))}


class MessageStreamRenderer:
    """Canonical chunks in, Messages stream events (name, data) out: message_start and a ping first,
    one block per kind of output (thinking, text, each tool call), message_delta and message_stop last."""

    def __init__(self, model: str, request_id: str):
        self.model = model
        self.request_id = request_id
        self.started = False
        self.block: tuple[str, Any] | None = None  # (kind, tool call index) of the open block
        self.index = -1
        self.finish: str | None = None
        self.usage: dict | None = None

    def _open(self, kind: str, key: Any, start: dict) -> list[tuple[str, dict]]:
        if self.block == (kind, key):
            return []
        events = self._close()
        self.index += 1
        self.block = (kind, key)
        return events + [("content_block_start", {"type": "content_block_start", "index": self.index,
                                                  "content_block": start})]

    def _close(self) -> list[tuple[str, dict]]:
        if self.block is None:
            return []
        self.block = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _delta(self, delta: dict) -> tuple[str, dict]:
        return "content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta}

    def feed(self, chunk: dict | bytes) -> list[tuple[str, dict]]:
        if isinstance(chunk, bytes):
            chunk = orjson.loads(chunk)
        events = [] if self.started else self._start(chunk)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            events += self._choice(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return events

    def _start(self, chunk: dict) -> list[tuple[str, dict]]:
        self.started = True
        message = {"id": message_id(self.request_id), "type": "message", "role": "assistant",
                   "model": self.model, "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 0, "output_tokens": 0}}
        return [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]

    def _choice(self, delta: dict) -> list[tuple[str, dict]]:
        events = []
        if delta.get("reasoning_content"):
            events += self._open("thinking", None, {"type": "thinking", "thinking": "", "signature": ""})
            events.append(self._delta({"type": "thinking_delta", "thinking": delta["reasoning_content"]}))
        if delta.get("content"):
            events += self._open("text", None, {"type": "text", "text": ""})
            events.append(self._delta({"type": "text_delta", "text": delta["content"]}))
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            start = {"type": "tool_use", "id": call.get("id") or "", "name": function.get("name") or "", "input": {}}
            events += self._open("tool_use", call.get("index", 0), start)
            if function.get("arguments"):
                events.append(self._delta({"type": "input_json_delta", "partial_json": function["arguments"]}))
        return events

    def finish_events(self) -> list[tuple[str, dict]]:
        """After the last chunk: close the open block, then the stop reason and the usage."""
        usage = usage_as_messages(self.usage)
        return self._close() + [
            ("message_delta", {"type": "message_delta", "usage": usage,
                               "delta": {"stop_reason": _stop_reason(self.finish), "stop_sequence": None}}),
            ("message_stop", {"type": "message_stop"})]


def messages_error_body(err: CloudBaseError, request_id: str) -> dict:
    """The CloudBase fields and Anthropic's envelope in one body, so both kinds of client read it."""
    body = error_body(err, request_id)
    body["type"] = "error"
    body["error"] = {"type": ERROR_TYPES.get(err.status, "api_error"), "message": err.message}
    return body


class MessagesStream:
    """The Messages event stream, framed: an Anthropic upstream's own events passed through (our message
    id and the client's model name in message_start), or MessageStreamRenderer's from canonical chunks."""
    __slots__ = ("renderer", "request_id", "native", "stopped")

    def __init__(self, model: str, request_id: str):
        self.renderer = MessageStreamRenderer(model, request_id)
        self.request_id = request_id
        self.native = False  # the upstream speaks Messages: its events are the stream
        self.stopped = False

    def start(self) -> bytes:
        return b""

    def feed(self, chunk: Any) -> bytes:
        if isinstance(chunk, NativeEvent):
            return self._pass(chunk.data)
        if self.native:
            return b""  # the usage chunk the model service adds: the upstream's own message_delta said it
        return sse.named_events(self.renderer.feed(chunk))

    def _pass(self, event: dict) -> bytes:
        kind = event.get("type") or ""
        if kind == "message_start":
            self.native = True
            message = {**(event.get("message") or {}), "id": message_id(self.request_id),
                       "model": self.renderer.model}
            event = {**event, "message": message}
        self.stopped = self.stopped or kind == "message_stop"
        return sse.named_event(kind, event)

    def finish(self) -> bytes:
        if self.native:  # the upstream's message_delta and message_stop went through
            return b"" if self.stopped else sse.named_event("message_stop", {"type": "message_stop"})
        return sse.named_events(self.renderer.finish_events())

    def failure(self, err: CloudBaseError) -> bytes:
        return sse.named_event("error", messages_error_body(err, self.request_id))


class MessagesSurface(Surface[ChatRequest]):
    """Anthropic Messages: the key may come as `x-api-key`, and every answer, refusals included, wears
    Anthropic's envelope."""
    name = "messages"
    api_key_header = True

    def parse(self, body: dict) -> ChatRequest:
        req = parse_messages_request(body)
        req.surface = self.name
        return req

    def render(self, req: ChatRequest, answer: dict, request_id: str) -> dict:
        if answer.get("type") == "message":  # an Anthropic upstream's own Message: it passes through
            return {**answer, "id": message_id(request_id), "model": req.model}
        return render_message(answer, request_id)

    def stream(self, req: ChatRequest, request_id: str) -> MessagesStream:
        return MessagesStream(req.model, request_id)

    def error_body(self, err: CloudBaseError, request_id: str) -> dict:
        return messages_error_body(err, request_id)


MESSAGES = MessagesSurface()
