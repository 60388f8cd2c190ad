"""An agent run's answer on the wire, from the model service's canonical chunks: AG-UI events
(`RUN_STARTED`, `TEXT_MESSAGE_*`, `TOOL_CALL_*`, `TOOL_CALL_RESULT`, `RUN_FINISHED`, or `RUN_ERROR`) or
CloudBase's legacy bot objects (`{created, record_id, model, type, role, content, finish_reason:
continue|stop, usage}` then `[DONE]`). Each render is a `StreamRender` the edge's one pump drives; `final` is
what the run said, for the conversation's records.

A run whose model calls the gateway's own (MCP) tools has several model rounds: between two of them the
stream carries a `RoundEnd`, then one `ToolResult` per call the gateway ran."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson

from cbgate.errors import AgentRequestLLMError, CloudBaseError, ModelRequestFailed
from cbgate.protocol import sse
from cbgate.protocol.agent_request import new_id


USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass(frozen=True, slots=True)
class RoundEnd:
    """A model round of the run ended, and the gateway runs the tool calls it made of the gateway's tools."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool the gateway ran for the model answered (an error is said in `content`, as the model reads it)."""
    call_id: str
    content: str
    error: bool = False


@dataclass(slots=True)
class RunAnswer:
    """What one run said: its text, the tool calls it left for the client to answer and its usage, summed
    over its model rounds."""
    text: str = ""
    tool_calls: list[dict] = field(default_factory=list)
    usage: dict | None = None  # {prompt_tokens, completion_tokens, total_tokens}
    earlier: dict | None = None  # the usage of the rounds before this one

    def note_usage(self, usage: dict) -> None:
        """A round reports its usage (maybe more than once: the last report counts)."""
        before = self.earlier or {}
        self.usage = {name: before.get(name, 0) + _count(usage.get(name)) for name in USAGE_FIELDS}

    def end_round(self) -> None:
        self.earlier = self.usage

    def answered(self, call_id: str) -> None:
        """The gateway ran this call: nothing is left for the client to do about it."""
        self.tool_calls = [c for c in self.tool_calls if c["id"] != call_id]


def _count(value) -> int:
    """A token count as an upstream reported it; anything but a whole number counts nothing."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 53 else 0


def call_index(call: dict, default: int) -> int:
    """A streamed tool call's index (which call its delta continues); `default` when it has none usable."""
    index = call.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else default


def tool_call_deltas(delta: dict) -> list:
    calls = delta.get("tool_calls")
    return calls if isinstance(calls, list) else []


def chunk_delta(chunk: dict | bytes) -> tuple[dict, dict | None]:
    """The first choice's delta and the chunk's usage (either may be empty)."""
    if isinstance(chunk, bytes):
        try:
            chunk = orjson.loads(chunk)
        except orjson.JSONDecodeError:
            return {}, None
    if not isinstance(chunk, dict):
        return {}, None
    choices = chunk.get("choices")
    delta = choices[0].get("delta") if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    usage = chunk.get("usage") if isinstance(chunk.get("usage"), dict) else None
    return (delta if isinstance(delta, dict) else {}), usage


def agent_error_code(err: CloudBaseError) -> str:
    """The code an agent surface shows: a failed model call is the agent's LLM error; the rest (limits,
    keys, a switched-off model) keep their own code."""
    if isinstance(err, ModelRequestFailed) and not err.client_caused:
        return AgentRequestLLMError.code
    return err.code


class AgUiStream:
    """Canonical chunks -> AG-UI events. Text goes in one assistant message; each tool call the model
    makes streams as TOOL_CALL_START / ARGS / END, and the run finishes for the client to answer them."""

    def __init__(self, thread_id: str, run_id: str):
        self.thread_id = thread_id
        self.run_id = run_id
        self.message_id: str | None = None  # the open text message
        self.calls: dict[int, str] = {}  # tool call index -> its id
        self.open_calls: list[str] = []
        self.final = RunAnswer()

    @staticmethod
    def _events(*events: dict) -> bytes:
        return b"".join(sse.event(e) for e in events)

    def start(self) -> bytes:
        return self._events({"type": "RUN_STARTED", "threadId": self.thread_id, "runId": self.run_id})

    def _end_text(self) -> list[dict]:
        if self.message_id is None:
            return []
        ended, self.message_id = self.message_id, None
        return [{"type": "TEXT_MESSAGE_END", "messageId": ended}]

    def feed(self, chunk: dict | bytes | RoundEnd | ToolResult) -> bytes:
        if isinstance(chunk, RoundEnd):
            return self._events(*self._end_round())
        if isinstance(chunk, ToolResult):
            self.final.answered(chunk.call_id)
            return self._events({"type": "TOOL_CALL_RESULT", "messageId": new_id("msg-"),
                                 "toolCallId": chunk.call_id, "content": chunk.content, "role": "tool"})
        delta, usage = chunk_delta(chunk)
        if usage is not None:
            self.final.note_usage(usage)
        events: list[dict] = []
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self.message_id is None:
                self.message_id = new_id("msg-")
                events.append({"type": "TEXT_MESSAGE_START", "messageId": self.message_id, "role": "assistant"})
            events.append({"type": "TEXT_MESSAGE_CONTENT", "messageId": self.message_id, "delta": text})
            self.final.text += text
        for call in tool_call_deltas(delta):
            events += self._tool_call(call)
        return self._events(*events) if events else b""

    def _tool_call(self, call: dict) -> list[dict]:
        if not isinstance(call, dict):
            return []
        index = call_index(call, len(self.calls))
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        events = []
        if index not in self.calls:
            call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else new_id("call-")
            self.calls[index] = call_id
            self.open_calls.append(call_id)
            events += self._end_text()
            events.append({"type": "TOOL_CALL_START", "toolCallId": call_id,
                           "toolCallName": str(fn.get("name") or "")})
            self.final.tool_calls.append({"id": call_id, "type": "function",
                                          "function": {"name": str(fn.get("name") or ""), "arguments": ""}})
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            call_id = self.calls[index]
            events.append({"type": "TOOL_CALL_ARGS", "toolCallId": call_id, "delta": arguments})
            next(c for c in self.final.tool_calls if c["id"] == call_id)["function"]["arguments"] += arguments
        return events

    def _end_round(self) -> list[dict]:
        """Text and tool calls end with their round; the next round numbers its calls from 0 again."""
        events = self._end_text() + [{"type": "TOOL_CALL_END", "toolCallId": c} for c in self.open_calls]
        self.open_calls = []
        self.calls = {}
        self.final.end_round()
        return events

    def finish(self) -> bytes:
        events = self._end_round()
        finished = {"type": "RUN_FINISHED", "threadId": self.thread_id, "runId": self.run_id}
        if self.final.tool_calls:  # the run stops here: the client runs the tools and sends their results
            finished["outcome"] = {"type": "success", "pendingToolCallIds": [c["id"] for c in self.final.tool_calls]}
        usage = self.final.usage
        if usage:
            finished["usage"] = [{"inputTokens": usage.get("prompt_tokens", 0),
                                  "outputTokens": usage.get("completion_tokens", 0),
                                  "totalTokens": usage.get("total_tokens", 0)}]
        return self._events(*events, finished)

    def failure(self, err: CloudBaseError) -> bytes:
        return self._events({"type": "RUN_ERROR", "message": err.message, "code": agent_error_code(err)})


class LegacyStream:
    """Canonical chunks -> CloudBase's legacy bot objects, ended by one `finish_reason: "stop"` object with
    the run's usage and `[DONE]` (what @cloudbase/ai's bot module reads up to)."""

    def __init__(self, model: str, request_id: str):
        self.model = model
        self.request_id = request_id
        self.record_id = new_id("record-")
        self.created = int(time.time())
        self.final = RunAnswer()

    def _object(self, kind: str, content: str, reasoning: str, finish: str, usage: dict) -> bytes:
        return sse.event({"created": self.created, "record_id": self.record_id, "model": self.model,
                          "version": "", "type": kind, "role": "assistant", "content": content,
                          "reasoning_content": reasoning, "finish_reason": finish, "usage": usage})

    def start(self) -> bytes:
        return b""

    def feed(self, chunk: dict | bytes | RoundEnd | ToolResult) -> bytes:
        """Text as it comes; the gateway's own tool calls have no legacy object (@cloudbase/ai reads `content`
        of every object as text), so a run that used tools shows what the model said around them."""
        if isinstance(chunk, RoundEnd):
            self.final.end_round()
            return b""
        if isinstance(chunk, ToolResult):
            return b""
        delta, usage = chunk_delta(chunk)
        if usage is not None:
            self.final.note_usage(usage)
        out = b""
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            out += self._object("thinking", "", reasoning, "continue", {})
        text = delta.get("content")
        if isinstance(text, str) and text:
            self.final.text += text
            out += self._object("text", text, "", "continue", {})
        return out

    def finish(self) -> bytes:
        u = self.final.usage or {}
        usage = {"promptTokens": u.get("prompt_tokens", 0), "completionTokens": u.get("completion_tokens", 0),
                 "totalTokens": u.get("total_tokens", 0)}
        return self._object("text", "", "", "stop", usage) + sse.DONE

    def failure(self, err: CloudBaseError) -> bytes:
        """The CloudBase error body as the last event, with the agent's code, and no [DONE]."""
        return sse.event({"code": agent_error_code(err), "message": err.message, "requestId": self.request_id})


class PassThroughStream:
    """A fronted agent's own AG-UI events, byte for byte; a failure on the gateway's side of the run (the
    server stalled, broke off, or the gateway is stopping) is one RUN_ERROR event."""

    @staticmethod
    def start() -> bytes:
        return b""

    @staticmethod
    def feed(data: bytes) -> bytes:
        return data

    @staticmethod
    def finish() -> bytes:
        return b""

    @staticmethod
    def failure(err: CloudBaseError) -> bytes:
        return sse.event({"type": "RUN_ERROR", "message": err.message, "code": agent_error_code(err)})
