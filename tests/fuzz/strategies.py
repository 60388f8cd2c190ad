"""Hypothesis strategies for hostile bytes: JSON values of every shape (huge integers, NaN, lone
surrogates, control characters, deep nesting), chat bodies with any field replaced, raw garbage."""
from __future__ import annotations

import json

from hypothesis import strategies as st

NASTY_TEXT = st.sampled_from(["", "\u0000", "a\u0000b", "\ud800", "\u202e", "\u001b]52;c;aGk=\u0007", "\r\n",
                              "gemma-3-270m\n", "gemma-3-270m", "x" * 5000, "null", "[", "{}", "-1", "1e999"])
TEXT = st.text(max_size=40) | NASTY_TEXT
NUMBERS = (st.integers(min_value=-(2 ** 70), max_value=2 ** 70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from([0, -1, 2 ** 53, 2 ** 63, 2 ** 64, -(2 ** 63) - 1, 1e308, -0.0]))
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)

ROLES = ["system", "developer", "user", "assistant", "tool", "function", "robot", ""]
MESSAGE_KEYS = ["role", "content", "name", "tool_calls", "tool_call_id", "function_call"]
CHAT_KEYS = ["model", "messages", "stream", "temperature", "top_p", "max_tokens", "max_completion_tokens",
             "stop", "n", "seed", "stream_options", "tools", "tool_choice", "presence_penalty",
             "frequency_penalty", "response_format", "user", "logprobs"]


def dumps(value) -> bytes:
    """JSON as a careless client writes it: big integers kept, NaN and Infinity written out."""
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def messages(draw):
    def message():
        base = {"role": draw(st.sampled_from(ROLES)), "content": draw(TEXT | JSON_VALUES)}
        for key in draw(st.lists(st.sampled_from(MESSAGE_KEYS), max_size=3)):
            base[key] = draw(JSON_VALUES | st.lists(JSON_VALUES, max_size=3))
        return base
    count = draw(st.sampled_from([0, 1, 2, 3, 2049]))
    first = [message() for _ in range(min(count, 3))]
    return first + first[-1:] * (count - len(first)) if first else []


@st.composite
def chat_bodies(draw, stream: bool | None = None) -> bytes:
    """Mostly near-valid bodies with some fields broken (they go deepest), some wholly random."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "messages", "any-json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "any-json":
        return dumps(draw(JSON_VALUES))
    body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
            "stream": draw(st.booleans()) if stream is None else stream}
    if kind == "messages":
        body["messages"] = draw(messages())
    for key in draw(st.lists(st.sampled_from(CHAT_KEYS) | TEXT, max_size=3)):
        body[key] = draw(JSON_VALUES)
    if stream is not None and draw(st.integers(0, 3)):
        body["stream"] = stream
    return dumps(body)
