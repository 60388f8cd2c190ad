"""Hypothesis against the chat API, JSON and streaming, with malformed bodies (see rules.py)."""
from __future__ import annotations

import requests
from hypothesis import given, strategies as st

from tests.fuzz.rules import STALL_SECONDS, Tally, check_answer, fuzz_settings
from tests.fuzz.strategies import chat_bodies
from tests.support.ledger import wait_for_records

HEADER_SETS = st.sampled_from([
    {"Content-Type": "application/json"}, {}, {"Content-Type": "text/plain"},
    {"Content-Type": "application/json", "Accept": "text/event-stream"},
])


def post(gw, body: bytes, headers: dict, tally: Tally, group: str = "cloudbase") -> None:
    reply = requests.post(gw.chat_url(group), data=body, headers={**gw.headers(), **headers},
                          timeout=STALL_SECONDS)
    tally.note(reply.status_code)
    check_answer(reply.status_code, reply.headers.get("content-type", ""), reply.text)


def assert_ledger_drains(gw) -> None:
    served = gw.chat({"model": "gemma-3-270m", "messages": [{"role": "user", "content": "after the fuzz"}]})
    assert served.status_code == 200
    rows = wait_for_records(gw.admin.store, gw.env_id, 1,
                            where=lambda r: r.request_id == served.headers["x-request-id"])
    assert rows, "the ledger stopped draining"


def test_malformed_chat_bodies(gateway):
    tally = Tally("chat API")

    @fuzz_settings(400)
    @given(body=chat_bodies(), headers=HEADER_SETS, group=st.sampled_from(["cloudbase"] * 5 + ["nope", "%00"]))
    def run(body, headers, group):
        post(gateway, body, headers, tally, group)

    run()
    print(tally.report())
    assert_ledger_drains(gateway)


def test_malformed_streaming_bodies(gateway):
    tally = Tally("chat API, streaming")

    @fuzz_settings(250)
    @given(body=chat_bodies(stream=True), headers=HEADER_SETS)
    def run(body, headers):
        post(gateway, body, headers, tally)

    run()
    print(tally.report())
    assert 200 in tally.statuses  # some inputs went all the way through a stream
    assert_ledger_drains(gateway)


@st.composite
def surface_bodies(draw):
    """Messages and Responses bodies, near-valid with fields broken, or anything at all."""
    from tests.fuzz.strategies import JSON_VALUES, dumps
    path = draw(st.sampled_from(["v1/messages", "v1/responses", "responses"]))
    if path.endswith("messages"):
        body = {"model": "gemma-3-270m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
        keys = ["model", "max_tokens", "messages", "system", "stream", "tools", "tool_choice", "stop_sequences",
                "temperature", "metadata", "thinking"]
    else:
        body = {"model": "gemma-3-270m", "input": "hi"}
        keys = ["model", "input", "instructions", "previous_response_id", "stream", "store", "tools", "user",
                "max_output_tokens", "truncation", "metadata", "text", "context_management"]
    body["stream"] = draw(st.booleans())
    for key in draw(st.lists(st.sampled_from(keys), max_size=3)):
        body[key] = draw(JSON_VALUES)
    return path, (dumps(body) if draw(st.integers(0, 5)) else dumps(draw(JSON_VALUES)))


def test_malformed_messages_and_responses_bodies(gateway):
    tally = Tally("Messages and Responses surfaces")

    @fuzz_settings(250)
    @given(case=surface_bodies())
    def run(case):
        path, body = case
        reply = requests.post(f"{gateway.url}/v1/ai/cloudbase/{path}", data=body, timeout=STALL_SECONDS,
                              headers={**gateway.headers(), "Content-Type": "application/json"})
        tally.note(reply.status_code)
        check_answer(reply.status_code, reply.headers.get("content-type", ""), reply.text, openai_stream=False)

    run()
    print(tally.report())
    assert_ledger_drains(gateway)
