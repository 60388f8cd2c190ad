"""The OpenAI chat request, validated once at the edge into a typed object.

Fields the gateway does not know are kept in `extra` and passed on to upstreams untouched.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cbgate.errors import ModelParamInvalid, ModelParamRequired
from cbgate.text import text_problem

# Bounds checked before any engine or upstream work: a request past them is refused with a 400. Each is
# far above what a real conversation needs (OpenAI allows 2,048 messages) and keeps one request's work
# small (16,000 empty messages once held the embedded engine for 54 s).
MAX_MESSAGES = 2048
MAX_TOOL_CALLS = 256
MAX_NAME_LENGTH = 256  # model names, tool call ids, function names
MAX_OUTPUT_TOKENS = 2 ** 31 - 1
MAX_CHOICES = 128
MAX_STOPS = 4  # stop sequences: what OpenAI-compatible servers take

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})
KNOWN_FIELDS = frozenset({
    "model", "messages", "stream", "temperature", "top_p", "max_tokens", "max_completion_tokens",
    "stop", "n", "seed", "stream_options", "tools", "tool_choice", "presence_penalty",
    "frequency_penalty", "response_format", "user",
})


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[dict]
    stream: bool = False
    max_tokens: int | None = None  # admission reserves it
    n: int | None = None  # the embedded engine answers one choice
    include_usage: bool = False
    tools: list[dict] | None = None  # an agent's run offers them to its model
    # the body as received, for faithful pass-through: sampling, stop and seed are validated by
    # parse_chat_request and read by upstreams from here, so they have no field of their own
    raw: dict = field(default_factory=dict)
    surface: str = "chat"  # the API it came in on (chat, messages, responses, images, agent): a ledger label
    agent_id: str | None = None  # the agent whose run this model call is (surface "agent"): a ledger label
    anthropic_body: dict | None = None  # a Messages request as received: Anthropic upstreams get it unchanged
    # the stream's last chunk with text carries the usage too: @cloudbase/ai's reader for 01-ai drops every chunk
    # without text, the finishing one included
    usage_on_last_text: bool = False

    @property
    def has_images(self) -> bool:
        return self._has_part("image_url")

    @property
    def has_audio(self) -> bool:
        return self._has_part("input_audio")

    def _has_part(self, kind: str) -> bool:
        # plain loops: asked twice a request (core/inputs.py), and most messages' content is a string
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, list):
                for part in content:
                    if part.get("type") == kind:
                        return True
        return False


def _invalid(name: str, why: str) -> ModelParamInvalid:
    return ModelParamInvalid(f"invalid parameter `{name}`: {why}")


def _number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(name, f"must be a number between {low:g} and {high:g}")
    if not low <= value <= high:
        raise _invalid(name, f"must be between {low:g} and {high:g}, got {value}")
    return float(value)


def _positive_int(body: dict, name: str, high: int = MAX_OUTPUT_TOKENS) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise _invalid(name, f"must be an integer from 1 to {high}, got {str(value)[:40]}")
    return value


def check_name(value: Any, where: str) -> None:
    """A model name, call id or function name: bounded and printable (it reaches upstreams, logs, the ledger)."""
    problem = text_problem(value, MAX_NAME_LENGTH)
    if problem:
        raise _invalid(where, problem)


def _check_tool_calls(index: int, tool_calls: Any) -> None:
    """An assistant message's earlier tool calls: OpenAI's shape, so no adapter meets a number instead."""
    where = f"messages[{index}].tool_calls"
    if not isinstance(tool_calls, list) or len(tool_calls) > MAX_TOOL_CALLS:
        raise _invalid(where, f"must be a list of at most {MAX_TOOL_CALLS} tool calls")
    for j, call in enumerate(tool_calls):
        if not isinstance(call, dict):
            raise _invalid(f"{where}[{j}]", "must be an object")
        if call.get("id") is not None:
            check_name(call["id"], f"{where}[{j}].id")
        function = call.get("function")
        if not isinstance(function, dict):
            raise _invalid(f"{where}[{j}].function", "must be an object with a name and arguments")
        check_name(function.get("name"), f"{where}[{j}].function.name")
        if not isinstance(function.get("arguments", ""), str):
            raise _invalid(f"{where}[{j}].function.arguments", "must be a string (JSON text)")


def _check_content(index: int, message: dict) -> None:
    content = message.get("content")
    role = message["role"]
    where = f"messages[{index}].content"
    if content is None:
        # OpenAI allows null content on assistant messages that carry tool calls.
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            return
        raise _invalid(where, "is required")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid(where, "must be a string or a list of content parts")
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str) or part["type"] not in PART_TYPES:
            raise _invalid(f"{where}[{j}]", "must be a content part with type text or image_url")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise _invalid(f"{where}[{j}].text", "must be a string")
        if part["type"] == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise _invalid(f"{where}[{j}].image_url", "must carry a url")


def _check_messages(messages: Any) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages", "must be a non-empty list")
    if len(messages) > MAX_MESSAGES:
        raise _invalid("messages", f"may hold at most {MAX_MESSAGES} messages, got {len(messages)}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"messages[{i}]", "must be an object")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise _invalid(f"messages[{i}].role", f"unknown role {ascii(role)[:60]}")
        _check_content(i, message)
        if role == "tool":
            if not isinstance(message.get("tool_call_id"), str):
                raise _invalid(f"messages[{i}].tool_call_id", "is required on tool messages")
            check_name(message["tool_call_id"], f"messages[{i}].tool_call_id")
        if message.get("name") is not None:
            check_name(message["name"], f"messages[{i}].name")
        if message.get("tool_calls") is not None:
            _check_tool_calls(i, message["tool_calls"])
    return messages


def _check_stop(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and len(value) <= MAX_STOPS and all(isinstance(s, str) and s for s in value):
        return value
    raise _invalid("stop", f"must be a string or a list of up to {MAX_STOPS} non-empty strings")


def _check_tools(body: dict) -> list[dict] | None:
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list) or not all(
            isinstance(t, dict) and isinstance(t.get("type"), str) for t in tools):
        raise _invalid("tools", "must be a list of tool objects with a type")
    return tools


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a decoded JSON body; raise the CloudBase error naming the first bad field."""
    model = body.get("model")
    if model is None or model == "":
        raise ModelParamRequired("`model` is required")
    check_name(model, "model")
    messages = _check_messages(body.get("messages"))
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _invalid("stream", "must be a boolean")
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise _invalid("stream_options", "must be an object")
    max_tokens = _positive_int(body, "max_tokens")
    max_completion = _positive_int(body, "max_completion_tokens")
    n = _positive_int(body, "n", MAX_CHOICES)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not -2**63 <= seed < 2**63):
        raise _invalid("seed", "must be a 64-bit integer")
    _number(body, "presence_penalty", -2, 2)
    _number(body, "frequency_penalty", -2, 2)
    response_format = body.get("response_format")
    if response_format is not None and not isinstance(response_format, dict):
        raise _invalid("response_format", "must be an object")
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _check_stop(body.get("stop"))
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        max_tokens=max_tokens if max_tokens is not None else max_completion,
        n=n,
        include_usage=bool(stream and stream_options and stream_options.get("include_usage")),
        tools=_check_tools(body),
        raw=body,
    )
