"""Hypothesis against a scripted upstream answering malformed bodies, over both upstream protocols,
JSON and streaming: whatever it sends, the client gets an answer, a 4xx the upstream gave for the
client's own request, or a 502/504 AI_MODEL_REQUEST_FAILED (see rules.py)."""
from __future__ import annotations

import pytest
import requests
from hypothesis import given, strategies as st

from tests.fuzz.rules import STALL_SECONDS, Tally, check_answer, fuzz_settings
from tests.fuzz.strategies import JSON_VALUES, dumps
from tests.support.catalog import write_catalog
from tests.support.gateway import start_in_thread
from tests.support.ledger import wait_for_records
from tests.support.scripted_upstream import RawAnswer, ScriptedUpstream

COMPLETION = {"id": "c1", "object": "chat.completion", "model": "m",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok", "tool_calls": [
                  {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                           "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
CHUNK = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
         "choices": [{"index": 0, "delta": {"content": "hi", "tool_calls": [{"index": 0, "function": {
             "name": "f", "arguments": "{"}}]}, "finish_reason": None}]}
MESSAGE = {"type": "message", "content": [{"type": "text", "text": "ok"},
                                          {"type": "tool_use", "id": "t", "name": "f", "input": {}}],
           "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 1}}
ANTHROPIC_EVENTS = [
    {"type": "message_start", "message": {"usage": {"input_tokens": 3}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
    {"type": "message_stop"},
]


@st.composite
def mutated(draw, value):
    """`value` with a few of its parts (at any depth) replaced by anything."""
    if isinstance(value, (dict, list)) and draw(st.integers(0, 2)):
        copy = dict(value) if isinstance(value, dict) else list(value)
        keys = list(copy.keys()) if isinstance(copy, dict) else list(range(len(copy)))
        if keys:
            key = draw(st.sampled_from(keys))
            copy[key] = draw(mutated(copy[key]))
        return copy
    return draw(JSON_VALUES)


def sse(events: list[bytes], named: bool) -> bytes:
    return b"".join((b"event: x\n" if named else b"") + b"data: " + e + b"\n\n" for e in events)


@st.composite
def answers(draw, anthropic: bool, stream: bool) -> RawAnswer:
    status = draw(st.sampled_from([200] * 12 + [400, 401, 404, 422, 500, 302]))
    content_type = draw(st.sampled_from(["application/json"] * 3 + ["text/event-stream", "text/html"]))
    if not stream:
        good = MESSAGE if anthropic else COMPLETION
        body = draw(st.sampled_from([0, 0, 0, 1, 2]))
        raw = [dumps(draw(mutated(good))), dumps(draw(JSON_VALUES)), draw(st.binary(max_size=100))][body]
        return RawAnswer(raw, content_type, status)
    good_events = ANTHROPIC_EVENTS if anthropic else [CHUNK, {**CHUNK, "choices": [
        {"index": 0, "delta": {}, "finish_reason": "stop"}]}, {"choices": [], "usage": COMPLETION["usage"]}]
    events = []
    for event in good_events:
        choice = draw(st.integers(0, 9))
        if choice < 6:
            events.append(dumps(event))
        elif choice < 8:
            events.append(dumps(draw(mutated(event))))
        elif choice == 8:
            events.append(draw(st.binary(max_size=40)).replace(b"\n", b""))
    if draw(st.booleans()):
        events.append(b"[DONE]")
    return RawAnswer(sse(events, anthropic), draw(st.sampled_from(["text/event-stream"] * 4 + [content_type])),
                     status)


@pytest.fixture(scope="module")
def scripted_pair(tmp_path_factory):
    upstream = ScriptedUpstream().start()
    data_dir = tmp_path_factory.mktemp("fuzz-upstream") / "data"
    quick = {"connect": 2, "first_byte": 5, "idle": 5, "total": 10}
    write_catalog(data_dir, [
        {"name": "fz-openai", "deployments": [{"kind": "openai", "base_url": upstream.url, "name": "fz-openai",
                                               "timeouts": quick}]},
        {"name": "fz-anthropic", "deployments": [{"kind": "anthropic", "base_url": upstream.url,
                                                  "name": "fz-anthropic", "timeouts": quick}]},
    ])
    gw = start_in_thread(data_dir)
    yield gw, upstream
    gw.stop()
    upstream.stop()


@pytest.mark.parametrize("anthropic", [False, True], ids=["openai", "anthropic"])
def test_malformed_upstream_answers(scripted_pair, anthropic):
    gw, upstream = scripted_pair
    model = "fz-anthropic" if anthropic else "fz-openai"
    tally = Tally(f"scripted {model} upstream")

    @fuzz_settings(150)
    @given(stream=st.booleans(), data=st.data())
    def run(stream, data):
        answer = data.draw(answers(anthropic, stream))
        upstream.answers.clear()
        upstream.answer(answer, answer, answer)  # the same answer for every retry
        reply = requests.post(gw.chat_url(), headers=gw.headers(), timeout=STALL_SECONDS,
                              json={"model": model, "messages": [{"role": "user", "content": "hi"}],
                                    "stream": stream})
        tally.note(reply.status_code)
        check_answer(reply.status_code, reply.headers.get("content-type", ""), reply.text)
        if reply.status_code == 200 and not stream:
            usage = reply.json()["usage"]
            assert all(isinstance(usage[k], int) and usage[k] >= 0 for k in ("prompt_tokens", "completion_tokens"))

    run()
    upstream.answers.clear()
    print(tally.report())
    assert tally.statuses.get(200) and tally.statuses.get(502)  # both paths were exercised
    upstream.answer(RawAnswer(dumps(MESSAGE if anthropic else COMPLETION)))
    served = gw.chat({"model": model, "messages": [{"role": "user", "content": "after the fuzz"}]})
    assert served.status_code == 200, served.text
    assert wait_for_records(gw.admin.store, gw.env_id, 1,
                            where=lambda r: r.request_id == served.headers["x-request-id"])
