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
