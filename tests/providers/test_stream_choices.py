"""A stream chunk's choices are checked and noted in one pass (`note_stream_choices`); it must refuse exactly what
the answer's check refuses, and note the same text, first token and finish reason."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cbgate.providers.base import StreamOutcome
from cbgate.providers.openai_compat import _delta_text, check_choices, note_stream_choices

scalars = st.one_of(st.none(), st.text(max_size=3), st.integers(-1, 1), st.booleans())
functions = st.one_of(scalars, st.dictionaries(st.sampled_from(["name", "arguments", "x"]), scalars, max_size=2))
tool_calls = st.one_of(scalars, st.lists(st.one_of(scalars, st.dictionaries(
    st.sampled_from(["id", "index", "function"]), functions, max_size=3)), max_size=2))
values = st.one_of(scalars, tool_calls, st.lists(scalars, max_size=2))
deltas = st.one_of(scalars, st.dictionaries(
    st.sampled_from(["role", "content", "reasoning_content", "refusal", "tool_calls", "audio", "x"]), values,
    max_size=4))
choices = st.one_of(scalars, st.lists(st.one_of(scalars, st.fixed_dictionaries(
    {}, optional={"index": st.integers(0, 1), "delta": deltas,
                  "finish_reason": st.one_of(st.none(), st.sampled_from(["", "stop", "length"]), st.integers(0, 1))})),
    max_size=3))


def reference(value) -> tuple[str, list[str], bool, str | None]:
    """The two passes the stream path made before: the answer's check, then the noting."""
    try:
        check_choices(value, "delta")
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return type(exc).__name__, [], False, None
    parts: list[str] = []
    token = False
    finish = None
    for choice in value:
        delta = choice.get("delta")
        if delta and _delta_text(delta, parts):
            token = True
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]
    return "", parts, token, finish


@given(choices)
@settings(max_examples=3000, deadline=None)
def test_one_pass_refuses_and_notes_what_the_two_passes_did(value):
    expected_error, expected_parts, token, finish = reference(value)
    outcome, parts = StreamOutcome(), []
    try:
        finishes = note_stream_choices(value, outcome, parts)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        assert expected_error, f"refused what the check accepts: {exc}"
        return
    assert not expected_error, f"accepted what the check refuses ({expected_error})"
    assert sorted(parts) == sorted(expected_parts)  # the same text (a delta's keys may come in another order)
    assert (outcome.first_token_at is not None) == token
    assert outcome.finish_reason == finish and finishes == (finish is not None)


def test_a_delta_with_tool_calls_is_collected_once():
    delta = {"content": "a", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}
    parts: list[str] = []
    note_stream_choices([{"delta": delta}], StreamOutcome(), parts)
    assert parts == ["a", "f{}"]
