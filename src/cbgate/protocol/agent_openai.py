"""The OpenAI-protocol entry to an agent (`/v1/aibot/openai/chat/completions`) when its run has several model
rounds (the gateway ran MCP tools between them): the rounds as one chat completion, the way a client that
never declared those tools expects it. The gateway's tool calls and their results stay out of the answer;
text goes out as it comes; the usage is the run's, all rounds.

In a stream, a round's tool calls, finish and usage wait for the round's end: only then is it known whether
the gateway ran its calls (`RoundEnd`, then a `ToolResult` each, then the next round) or the run ends there.
"""
from __future__ import annotations

import orjson

from cbgate.errors import CloudBaseError
from cbgate.protocol.agent_stream import RoundEnd, RunAnswer, ToolResult, call_index, tool_call_deltas
from cbgate.protocol.chat_surface import ChatStream


def _parsed(chunk) -> dict | None:
    if isinstance(chunk, bytes):
        try:
            chunk = orjson.loads(chunk)
        except orjson.JSONDecodeError:
            return None
    return chunk if isinstance(chunk, dict) else None


def _choice(chunk: dict) -> dict:
    choices = chunk.get("choices")
    return choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}


def run_usage(answers: list[dict]) -> dict:
    """The usage of a run's model answers, added up (each a chat completion body)."""
    total = RunAnswer()
    for answer in answers:
        if isinstance(answer.get("usage"), dict):
            total.note_usage(answer["usage"])
            total.end_round()
    return total.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def without_calls(answer: dict, answered: set[str]) -> dict:
    """A chat completion body without the tool calls the gateway ran (those left are the client's)."""
    choice = _choice(answer)
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    calls = [c for c in message.get("tool_calls") or () if c.get("id") not in answered]
    message = {k: v for k, v in message.items() if k != "tool_calls"} | ({"tool_calls": calls} if calls else {})
    return {**answer, "choices": [{**choice, "message": message}, *answer["choices"][1:]]}


class OpenAIRunStream:
    """Wraps a chat completions stream render (ChatStream): a StreamRender of a run's rounds."""

    def __init__(self, inner: ChatStream):
        self.inner = inner
        self.held: list[dict] = []  # this round's chunks with tool calls, a finish or usage
        self.ended: list[dict] | None = None  # a round that ended with the gateway's calls, until it goes on
        self.answered: set[str] = set()  # the calls the gateway ran
        self.usage = RunAnswer()

    def start(self) -> bytes:
        return self.inner.start()

    def feed(self, chunk) -> bytes:
        if isinstance(chunk, RoundEnd):
            self.ended, self.held = self.held, []
            self.usage.end_round()
            return b""
        if isinstance(chunk, ToolResult):
            self.answered.add(chunk.call_id)
            return b""
        self.ended = None  # a new round: the one before went on, its calls were the gateway's
        parsed = _parsed(chunk)
        if parsed is None:
            return b""
        has_usage = isinstance(parsed.get("usage"), dict)
        if has_usage:
            self.usage.note_usage(parsed["usage"])
        choice = _choice(parsed)
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        if not (delta.get("tool_calls") or choice.get("finish_reason") or has_usage or not choice):
            return self.inner.feed(chunk)
        out = b""
        if delta.get("content"):  # said now; the rest waits
            text = {**choice, "delta": {"content": delta["content"]}, "finish_reason": None}
            out = self.inner.feed({**{k: v for k, v in parsed.items() if k != "usage"}, "choices": [text]})
            delta = {k: v for k, v in delta.items() if k != "content"}
        self.held.append({**parsed, "choices": [{**choice, "delta": delta}]} if choice else parsed)
        return out

    def finish(self) -> bytes:
        last = self.ended if self.ended is not None else self.held
        self.usage.end_round()
        out, ids = b"", {}
        for chunk in last:
            choice = _choice(chunk)
            delta = choice.get("delta") or {}
            calls = []
            for call in tool_call_deltas(delta):
                if not isinstance(call, dict):
                    continue
                index = call_index(call, len(ids))
                ids.setdefault(index, call["id"] if isinstance(call.get("id"), str) else None)
                if ids[index] not in self.answered:
                    calls.append(call)
            has_usage = isinstance(chunk.get("usage"), dict)
            if delta.get("tool_calls") and not calls and not choice.get("finish_reason") and not has_usage:
                continue  # only the gateway's calls: not the client's to see
            delta = {k: v for k, v in delta.items() if k != "tool_calls"} | ({"tool_calls": calls} if calls else {})
            if choice.get("finish_reason") == "tool_calls" and not any(
                    i not in self.answered for i in ids.values()):
                choice = {**choice, "finish_reason": "stop"}
            chunk = {**chunk, "choices": [{**choice, "delta": delta}]} if choice else chunk
            if has_usage and self.usage.usage is not None:
                chunk = {**chunk, "usage": self.usage.usage}
            out += self.inner.feed(chunk)
        return out + self.inner.finish()

    def failure(self, err: CloudBaseError) -> bytes:
        return self.inner.failure(err)
