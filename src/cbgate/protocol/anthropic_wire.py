"""Translation between OpenAI chat and Anthropic Messages, both ways, streaming included: the one
mapping of this protocol pair, used by the Anthropic upstream adapter (chat -> Messages -> chat) and by
the inbound Messages surface (Messages -> chat -> Messages, see `anthropic_messages`).

Pure functions and one small stream state machine; no I/O.
"""
from __future__ import annotations

from typing import Any

import orjson

from cbgate.errors import ModelParamInvalid
from cbgate.protocol.chat_request import KNOWN_FIELDS
from cbgate.protocol.chat_response import ChunkFactory, Usage
from cbgate.protocol.message_text import content_text
from cbgate.text import token_count

# OpenAI fields with no Messages counterpart: dropped rather than passed on (Anthropic refuses extras).
OPENAI_ONLY = frozenset({
    "logprobs", "top_logprobs", "parallel_tool_calls", "store", "modalities", "audio", "prediction",
    "service_tier", "logit_bias", "reasoning_effort", "functions", "function_call", "web_search_options",
})
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
                "tool_use": "tool_calls", "refusal": "content_filter"}
TOOL_CHOICES = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}
# The way back: an OpenAI finish reason and tool choice as Messages names them.
FINISH_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                  "function_call": "tool_use", "content_filter": "refusal"}
CHAT_TOOL_CHOICES = {"auto": "auto", "none": "none", "any": "required"}


def _image(part: dict) -> dict:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if url.startswith("data:") and ";base64," in url:
        media_type, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content or ():
        if part.get("type") == "text" and part.get("text"):
            blocks.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image_url":
            blocks.append(_image(part))
    return blocks


def _tool_use(call: dict) -> dict:
    function = call.get("function") or {}
    try:
        arguments = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        arguments = {"arguments": function.get("arguments")}
    return {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""), "input": arguments}


def _append(messages: list[dict], role: str, blocks: list[dict]) -> None:
    """Messages alternate user/assistant: consecutive turns of one role are merged."""
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def to_messages(openai_messages: list[dict]) -> tuple[str, list[dict]]:
    system: list[str] = []
    messages: list[dict] = []
    for message in openai_messages:
        role, content = message["role"], message.get("content")
        if role in ("system", "developer"):
            system.append(content_text(content))
        elif role == "assistant":
            blocks = _blocks(content) + [_tool_use(c) for c in message.get("tool_calls") or ()]
            _append(messages, "assistant", blocks or [{"type": "text", "text": ""}])
        elif role in ("tool", "function"):
            _append(messages, "user", [{"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""),
                                        "content": content_text(content)}])
        else:
            _append(messages, "user", _blocks(content) or [{"type": "text", "text": ""}])
    return "\n\n".join(s for s in system if s), messages


def _tools(tools: list[dict]) -> list[dict]:
    out = []
    for tool in tools:
        function = tool.get("function") if tool.get("type") == "function" else None
        if function is None:
            out.append(tool)  # already in Anthropic's shape (or a server tool): passed on
            continue
        entry = {"name": function.get("name", ""), "input_schema": function.get("parameters") or {"type": "object"}}
        if function.get("description"):
            entry["description"] = function["description"]
        out.append(entry)
    return out


def _tool_choice(choice: Any) -> dict | None:
    if isinstance(choice, str):
        return TOOL_CHOICES.get(choice)
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "tool", "name": choice["function"].get("name", "")}
    return choice if isinstance(choice, dict) else None


def to_request(raw: dict, model: str, default_max_tokens: int, stream: bool) -> dict:
    """The Messages request for an OpenAI chat body; unknown fields (e.g. `thinking`, `top_k`) pass on."""
    if raw.get("n") not in (None, 1):
        raise ModelParamInvalid("invalid parameter `n`: this model generates one choice")
    system, messages = to_messages(raw["messages"])
    max_tokens = raw.get("max_tokens") or raw.get("max_completion_tokens") or default_max_tokens
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    if system:
        body["system"] = system
    for name in ("temperature", "top_p"):
        if raw.get(name) is not None:
            body[name] = raw[name]
    stop = raw.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    if raw.get("tools"):
        body["tools"] = _tools(raw["tools"])
    choice = _tool_choice(raw.get("tool_choice"))
    if choice is not None:
        body["tool_choice"] = choice
    if isinstance(raw.get("user"), str):
        body["metadata"] = {"user_id": raw["user"]}
    if stream:
        body["stream"] = True
    for name, value in raw.items():
        if name not in KNOWN_FIELDS and name not in OPENAI_ONLY and name not in body:
            body[name] = value
    return body


def usage_of(usage: Any) -> Usage | None:
    """Reported usage (None when there is none) as ours: the prompt counts cached and cache-writing input
    too (all of it is billed), with the two cache counts kept beside it; counts that are not counts raise
    ValueError."""
    if usage is None:
        return None
    if not isinstance(usage, dict):
        raise ValueError("usage must be an object")
    created = token_count(usage.get("cache_creation_input_tokens") or 0)
    read = token_count(usage.get("cache_read_input_tokens") or 0)
    prompt = token_count(token_count(usage.get("input_tokens") or 0) + created + read)
    completion = token_count(usage.get("output_tokens") or 0)
    return Usage(prompt, completion, cache_creation_tokens=created, cache_read_tokens=read) \
        if prompt or completion else None


def usage_as_messages(usage: dict | None) -> dict:
    """An OpenAI usage object (with our cache details) as Messages reports it."""
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    read = int(details.get("cached_tokens") or 0)
    created = int(details.get("cache_creation_tokens") or 0)
    return {"input_tokens": max(0, int(usage.get("prompt_tokens") or 0) - read - created),
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "cache_creation_input_tokens": created, "cache_read_input_tokens": read}


def from_message(body: dict, chunks: ChunkFactory) -> tuple[dict, Usage | None, list[str]]:
    """An OpenAI completion from a Messages answer, its usage (None if unreported) and its text pieces."""
    message = _assistant_turn(body.get("content") or [])
    finish = STOP_REASONS.get(body.get("stop_reason"), "stop")
    usage = usage_of(body.get("usage"))
    completion = chunks.completion(message, finish, usage or Usage())
    pieces = [message["content"] or "", message.get("reasoning_content", "")]
    pieces += [c["function"]["name"] + c["function"]["arguments"] for c in message.get("tool_calls", ())]
    return completion, usage, pieces


class StreamTranslator:
    """Messages stream events in, OpenAI chunks out (None when an event carries nothing for the client)."""

    def __init__(self, chunks: ChunkFactory):
        self.chunks = chunks
        self.tool_index: dict[int, int] = {}  # content block index -> tool call index
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cache_creation_tokens = 0
        self.cache_read_tokens = 0
        self.reported = False
        self.finish_reason: str | None = None
        self.finished = False
        self.parts: list[str] = []  # generated text, for an estimate when usage is not reported

    def usage(self) -> Usage | None:
        if not self.reported:
            return None
        return Usage(self.prompt_tokens, self.completion_tokens, cache_creation_tokens=self.cache_creation_tokens,
                     cache_read_tokens=self.cache_read_tokens)

    def _note_usage(self, usage: Any) -> None:
        found = usage_of(usage)
        if found is not None:
            self.reported = True
            self.prompt_tokens = found.prompt_tokens or self.prompt_tokens
            self.completion_tokens = found.completion_tokens or self.completion_tokens
            self.cache_creation_tokens = found.cache_creation_tokens or self.cache_creation_tokens
            self.cache_read_tokens = found.cache_read_tokens or self.cache_read_tokens

    def feed(self, event: dict) -> dict | None:
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._delta(event.get("index", 0), event.get("delta") or {})
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tool_index[event.get("index", 0)] = len(self.tool_index)
                self.parts.append(block.get("name", ""))
                call = {"index": index, "id": block.get("id", ""), "type": "function",
                        "function": {"name": block.get("name", ""), "arguments": ""}}
                return self.chunks.chunk({"tool_calls": [call]})
            if block.get("type") == "text" and block.get("text"):
                self.parts.append(block["text"])
                return self.chunks.chunk({"content": block["text"]})
            return None
        if kind == "message_start":
            self._note_usage((event.get("message") or {}).get("usage"))
            return self.chunks.chunk({"role": "assistant", "content": ""})
        if kind == "message_delta":
            self._note_usage(event.get("usage"))
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason:
                self.finish_reason = STOP_REASONS.get(reason, "stop")
                return self.chunks.chunk({}, self.finish_reason)
            return None
        if kind == "message_stop":
            self.finished = True
        return None  # ping, content_block_stop, and kinds added later

    def _delta(self, block: int, delta: dict) -> dict | None:
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text", "")
            self.parts.append(text)
            return self.chunks.chunk({"content": text})
        if kind == "thinking_delta":
            text = delta.get("thinking", "")
            self.parts.append(text)
            return self.chunks.chunk({"reasoning_content": text})
        if kind == "input_json_delta" and block in self.tool_index:
            partial = delta.get("partial_json", "")
            self.parts.append(partial)
            return self.chunks.chunk({"tool_calls": [{"index": self.tool_index[block],
                                                      "function": {"arguments": partial}}]})
        return None  # signature_delta and others carry nothing for an OpenAI client


# The way back: a Messages request as an OpenAI chat body (the inbound Messages surface).

def _image_part(block: dict) -> dict:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    else:
        url = source.get("url", "")
    return {"type": "image_url", "image_url": {"url": url}}


def _user_turn(blocks: list[dict]) -> list[dict]:
    """A user turn's tool results become tool messages (first, as OpenAI orders them), the rest one user message."""
    tools, parts = [], []
    for block in blocks:
        kind = block.get("type")
        if kind == "tool_result":
            tools.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""),
                          "content": content_text(block.get("content"))})
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(_image_part(block))
    if parts:  # one text block reads as plain content, which every OpenAI-compatible server takes
        single = len(parts) == 1 and parts[0]["type"] == "text"
        tools.append({"role": "user", "content": parts[0]["text"] if single else parts})
    return tools


def _assistant_turn(blocks: list[dict]) -> dict:
    """An assistant turn in OpenAI form from Messages content blocks (text, thinking, tool use)."""
    texts, thoughts, calls = [], [], []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            thoughts.append(block.get("thinking", ""))
        elif kind == "tool_use":
            calls.append({"id": block.get("id", ""), "type": "function", "function": {
                "name": block.get("name", ""), "arguments": orjson.dumps(block.get("input", {})).decode()}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return message


def from_messages(system: Any, messages: list[dict]) -> list[dict]:
    out = [{"role": "system", "content": content_text(system)}] if system else []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
        elif message["role"] == "assistant":
            out.append(_assistant_turn(content))
        else:
            out.extend(_user_turn(content) or [{"role": "user", "content": ""}])
    return out


def _chat_tools(tools: list[dict]) -> list[dict]:
    out = []
    for tool in tools:
        if "input_schema" not in tool:
            out.append(tool)  # a server tool: only an Anthropic upstream knows it
            continue
        function = {"name": tool.get("name", ""), "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _chat_tool_choice(choice: dict) -> Any:
    if choice.get("type") == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return CHAT_TOOL_CHOICES.get(choice.get("type"), "auto")


def to_chat_body(body: dict) -> dict:
    """The OpenAI chat body a Messages request means; `top_k` goes on (OpenAI-compatible servers such as
    vLLM and llama.cpp read it), `thinking` and `cache_control` only reach Anthropic upstreams, which
    receive the Messages body itself."""
    chat: dict[str, Any] = {"model": body["model"], "messages": from_messages(body.get("system"), body["messages"]),
                            "max_tokens": body["max_tokens"]}
    for name in ("temperature", "top_p", "top_k", "stream"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    if body.get("tools"):
        chat["tools"] = _chat_tools(body["tools"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        chat["tool_choice"] = _chat_tool_choice(choice)
        if choice.get("disable_parallel_tool_use"):
            chat["parallel_tool_calls"] = False
    user = (body.get("metadata") or {}).get("user_id")
    if isinstance(user, str):
        chat["user"] = user
    return chat
