"""Hypothesis over what a model round of an agent run hands the gateway (upstream chunks, as JSON or bytes, with
parts replaced by anything) and the gateway's own round events between them: reading a round's tool calls and
rendering the run as AG-UI events, legacy bot objects or one chat completion never raises, and every event
that goes out is JSON."""
from __future__ import annotations

import json

import orjson
from hypothesis import given, strategies as st

from cbgate.core.agent_loop import RoundCalls
from cbgate.protocol.agent_openai import OpenAIRunStream
from cbgate.protocol.agent_stream import AgUiStream, LegacyStream, RoundEnd, ToolResult
from cbgate.protocol.chat_surface import ChatStream
from tests.fuzz.rules import fuzz_settings
from tests.fuzz.test_upstream_fuzz import mutated

CHUNK = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
         "choices": [{"index": 0, "delta": {"content": "hi", "tool_calls": [
             {"index": 0, "id": "call-1", "type": "function", "function": {"name": "svc__tool", "arguments": "{"}}]},
                      "finish_reason": None}],
         "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}

def decodable(value) -> bool:
    """What an adapter can hand on as a dict: JSON it decoded (no lone surrogates, integers within 64 bits)."""
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


WIRE_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)  # what JSON decodes to
ITEMS = st.one_of(
    mutated(CHUNK).filter(decodable),
    mutated(CHUNK).map(lambda c: json.dumps(c).encode()),  # an upstream's bytes, passed on: anything
    st.binary(max_size=40),
    st.just(RoundEnd()),
    st.builds(ToolResult, WIRE_TEXT, WIRE_TEXT, st.booleans()),
)


def events_of(framed: bytes) -> list:
    """The data of every SSE event in `framed`, each parsed (a non-JSON event fails the test)."""
    out = []
    for block in framed.split(b"\n\n"):
        if block.startswith(b"data: ") and block != b"data: [DONE]":
            out.append(orjson.loads(block[6:]))
    return out


@fuzz_settings(300)
@given(st.lists(ITEMS, max_size=12))
def test_round_items_never_break_the_run_or_its_renders(items):
    calls = RoundCalls()
    renders = [AgUiStream("t", "r"), LegacyStream("m", "rid"), OpenAIRunStream(ChatStream("rid"))]
    framed = [render.start() for render in renders]
    for item in items:
        if not isinstance(item, (RoundEnd, ToolResult)) and isinstance(item, (dict, bytes)):
            item = calls.note(item)
        for n, render in enumerate(renders):
            framed[n] += render.feed(item)
    for n, render in enumerate(renders):
        framed[n] += render.finish()
        events_of(framed[n])
    for call in calls.calls.values():  # what the next round would be sent: well formed, whatever came
        assert isinstance(call["id"], str) and call["id"]
        assert isinstance(call["function"]["name"], str) and isinstance(call["function"]["arguments"], str)
