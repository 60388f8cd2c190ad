"""The OpenAI Responses create request, validated once into a typed object, and the one translation
between Responses items and canonical (OpenAI chat) messages, both ways."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cbgate.errors import ModelParamInvalid, ModelParamRequired
from cbgate.protocol.chat_request import MAX_MESSAGES, MAX_OUTPUT_TOKENS, ChatRequest, check_name
from cbgate.protocol.message_text import content_text
from cbgate.text import text_problem

TRUNCATIONS = ("disabled", "auto")
INPUT_ROLES = ("user", "assistant", "system", "developer")
SUMMARY_PREFIX = "Summary of the conversation so far:\n"
MAX_INPUT_ITEMS = MAX_MESSAGES  # the chat surface's bound on messages, in this surface's own terms


def _invalid(name: str, why: str) -> ModelParamInvalid:
    return ModelParamInvalid(f"invalid parameter `{name}`: {why}")


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(16).hex()}"


@dataclass(slots=True)
class ResponsesRequest:
    model: str
    input_items: list[dict]  # as given (a string input becomes one user message item), each with an id
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[dict] = field(default_factory=list)  # Responses function tools, as given
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    store: bool = True
    stream: bool = False
    previous_response_id: str | None = None
    truncation: str = "disabled"
    compact_threshold: int | None = None  # context_management: compaction above this many tokens
    metadata: dict = field(default_factory=dict)
    text_format: dict | None = None
    user: str | None = None


def _number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _invalid(name, f"must be a number between {low:g} and {high:g}")
    return float(value)


def _text_of_parts(where: str, content: Any) -> Any:
    """Input content: a string or parts (input_text / output_text / input_image); checked here."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid(where, "must be a string or a list of content parts")
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "refusal"):
            if not isinstance(part.get("text", part.get("refusal")), str):
                raise _invalid(f"{where}[{j}].text", "must be a string")
        elif kind == "input_image":
            if not isinstance(part.get("image_url"), str) or not part["image_url"]:
                raise _invalid(f"{where}[{j}].image_url", "must be a URL or a data URL (file ids are not stored here)")
        else:
            raise _invalid(f"{where}[{j}]", f"content part type {kind!r} is not supported")
    return content


def _check_item(i: int, item: Any) -> dict:
    where = f"input[{i}]"
    if not isinstance(item, dict):
        raise _invalid(where, "must be an object")
    kind = item.get("type", "message")
    if kind == "message":
        if item.get("role") not in INPUT_ROLES:
            raise _invalid(f"{where}.role", "must be user, assistant, system or developer")
        _text_of_parts(f"{where}.content", item.get("content"))
    elif kind == "function_call":
        for name in ("call_id", "name", "arguments"):
            if not isinstance(item.get(name), str):
                raise _invalid(f"{where}.{name}", "must be a string")
        check_name(item["call_id"], f"{where}.call_id")
        check_name(item["name"], f"{where}.name")
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise _invalid(f"{where}.call_id", "must be a string")
        check_name(item["call_id"], f"{where}.call_id")
        if not isinstance(item.get("output"), str):  # or parts, which the chat translation joins
            _text_of_parts(f"{where}.output", item.get("output"))
    elif kind == "compaction":
        if not isinstance(item.get("encrypted_content"), str):
            raise _invalid(f"{where}.encrypted_content", "must be the string a compaction returned")
    elif kind != "reasoning":
        raise _invalid(f"{where}.type", f"item type {kind!r} is not supported")
    item = {**item, "type": kind}
    item.setdefault("id", new_id({"message": "msg"}.get(kind, "item")))
    return item


def _input_items(value: Any) -> list[dict]:
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value, "id": new_id("msg")}]
    if not isinstance(value, list):
        raise _invalid("input", "must be a string or a list of items")
    if len(value) > MAX_INPUT_ITEMS:
        raise _invalid("input", f"may hold at most {MAX_INPUT_ITEMS} items, got {len(value)}")
    return [_check_item(i, item) for i, item in enumerate(value)]


def _tools(value: Any) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid("tools", "must be a list")
    for i, tool in enumerate(value):
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("name"), str):
            raise _invalid(f"tools[{i}]", "only function tools (type function, with a name) are served here")
    return value


def _compact_threshold(value: Any) -> int | None:
    if value is None:
        return None
    entries = value if isinstance(value, list) else [value]
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("type") != "compaction":
            raise _invalid("context_management", "entries must be {\"type\": \"compaction\", \"compact_threshold\": N}")
        threshold = entry.get("compact_threshold")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1):
            raise _invalid("context_management.compact_threshold", "must be a positive integer")
        return threshold or 0  # 0: compact at the model's context
    return None


def _flag(body: dict, name: str, default: bool | None) -> bool | None:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _invalid(name, "must be a boolean")
    return value


def check_stored_names(body: dict) -> None:
    """`model`, `previous_response_id` and `user` reach storage (SQL) and logs: strings, bounded, with no
    NUL or control characters. The compact route checks its body with this too."""
    if not body.get("model"):
        raise ModelParamRequired("`model` is required")
    for name, length in (("model", 256), ("previous_response_id", 64), ("user", 256)):
        problem = text_problem(body[name], length) if body.get(name) is not None else None
        if problem:
            raise _invalid(name, problem)


def parse_responses_request(body: dict) -> ResponsesRequest:
    check_stored_names(body)
    model = body["model"]
    if body.get("input") is None:
        raise ModelParamRequired("`input` is required")
    max_output = body.get("max_output_tokens")
    if max_output is not None and (isinstance(max_output, bool) or not isinstance(max_output, int)
                                   or not 1 <= max_output <= MAX_OUTPUT_TOKENS):
        raise _invalid("max_output_tokens", f"must be an integer from 1 to {MAX_OUTPUT_TOKENS}")
    truncation = body.get("truncation") or "disabled"
    if truncation not in TRUNCATIONS:
        raise _invalid("truncation", "must be \"disabled\" or \"auto\"")
    for name in ("instructions", "previous_response_id", "user"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise _invalid(name, "must be a string")
    metadata = body.get("metadata") or {}
    text = body.get("text") or {}
    if not isinstance(metadata, dict) or not isinstance(text, dict):
        raise _invalid("metadata" if not isinstance(metadata, dict) else "text", "must be an object")
    if text.get("format") is not None and not isinstance(text["format"], dict):
        raise _invalid("text.format", "must be an object")
    return ResponsesRequest(
        model=model, input_items=_input_items(body["input"]), instructions=body.get("instructions"),
        max_output_tokens=max_output, temperature=_number(body, "temperature", 0, 2),
        top_p=_number(body, "top_p", 0, 1), tools=_tools(body.get("tools")), tool_choice=body.get("tool_choice"),
        parallel_tool_calls=_flag(body, "parallel_tool_calls", None), store=_flag(body, "store", True),
        stream=_flag(body, "stream", False), previous_response_id=body.get("previous_response_id"),
        truncation=truncation, compact_threshold=_compact_threshold(body.get("context_management")),
        metadata=metadata, text_format=text.get("format"), user=body.get("user"))


@dataclass(slots=True)
class CompactRequest:
    """`responses/compact` (or `responses/{id}/compact`): what to summarize, and by which model."""
    model: str
    previous_response_id: str | None
    input_items: list[dict] | None
    instructions: str | None


def parse_compact_request(body: dict, response_id: str | None = None) -> CompactRequest:
    """The compact body, checked in its own field names; the id in the path stands for
    `previous_response_id`."""
    previous = response_id or body.get("previous_response_id")
    check_stored_names({**body, "previous_response_id": previous})
    items = _input_items(body["input"]) if body.get("input") is not None else None
    if previous is None and items is None:
        raise ModelParamRequired("`previous_response_id` or `input` is required")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _invalid("instructions", "must be a string")
    return CompactRequest(body["model"], previous, items, instructions)


def chat_request(req: ResponsesRequest, messages: list[dict]) -> ChatRequest:
    """The canonical request one Responses turn makes. Every field was validated as the client sent it
    (parse_responses_request), so this only translates: a second validation would name chat fields
    (`messages[3]...`) the client never sent."""
    body: dict = {"model": req.model, "messages": messages, "stream": req.stream}
    for name, value in (("max_tokens", req.max_output_tokens), ("temperature", req.temperature),
                        ("top_p", req.top_p), ("parallel_tool_calls", req.parallel_tool_calls),
                        ("user", req.user), ("response_format", chat_response_format(req.text_format))):
        if value is not None:
            body[name] = value
    tools = chat_tools(req.tools) if req.tools else None
    if tools:
        body["tools"] = tools
    tool_choice = chat_tool_choice(req.tool_choice) if req.tool_choice is not None else None
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if req.stream:
        body["stream_options"] = {"include_usage": True}
    return ChatRequest(model=req.model, messages=messages, stream=req.stream, max_tokens=req.max_output_tokens,
                       include_usage=req.stream, tools=tools, raw=body, surface="responses")


def summary_request(model: str, messages: list[dict], max_tokens: int) -> ChatRequest:
    """The model call that summarizes a conversation for compaction (a Responses request's own work)."""
    return ChatRequest(model=model, messages=messages, max_tokens=max_tokens, surface="responses",
                       raw={"model": model, "messages": messages, "max_tokens": max_tokens})


# Items <-> canonical messages.

def _chat_parts(content: Any) -> Any:
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part["type"] == "input_image":
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            parts.append({"type": "text", "text": part.get("text", part.get("refusal", ""))})
    if len(parts) == 1 and parts[0]["type"] == "text":  # plain content, which every OpenAI-compatible server takes
        return parts[0]["text"]
    return parts


def items_to_messages(items: list[dict]) -> list[dict]:
    """Responses items as chat messages: consecutive function calls become one assistant turn."""
    messages: list[dict] = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            content = _chat_parts(item["content"])
            if item["role"] == "assistant":
                content = content_text(content)
            messages.append({"role": item["role"], "content": content})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and (last.get("tool_calls") or not last["content"]):
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            messages.append({"role": "tool", "tool_call_id": item["call_id"],
                             "content": output if isinstance(output, str) else content_text(output)})
        elif kind == "compaction":
            messages.append(summary_message(item["encrypted_content"]))
    return messages


def summary_message(summary: str) -> dict:
    """The compacted context: the model's own summary, read as the start of the conversation."""
    return {"role": "user", "content": SUMMARY_PREFIX + summary}


def output_to_messages(output: list[dict]) -> list[dict]:
    """A response's output items as the chat messages a later turn continues from (reasoning dropped)."""
    return items_to_messages([i for i in output if i["type"] in ("message", "function_call")])


def chat_tools(tools: list[dict]) -> list[dict]:
    out = []
    for tool in tools:
        function = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object"}}
        for name in ("description", "strict"):
            if tool.get(name) is not None:
                function[name] = tool[name]
        out.append({"type": "function", "function": function})
    return out


def chat_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return choice


def chat_response_format(text_format: dict | None) -> dict | None:
    if not isinstance(text_format, dict) or text_format.get("type") in (None, "text"):
        return None
    if text_format["type"] == "json_schema":
        schema = {k: text_format[k] for k in ("name", "schema", "strict", "description") if k in text_format}
        return {"type": "json_schema", "json_schema": schema}
    return {"type": text_format["type"]}
