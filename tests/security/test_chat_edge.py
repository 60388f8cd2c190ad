"""Bad chat requests get a 400 with a CloudBase code before any engine or upstream work, and whatever is
refused is still recorded without holding up the ledger (issue 11: a NUL in `model` once stalled every
tenant's PostgreSQL ledger)."""
from __future__ import annotations

import pytest
import requests

from tests.support.gateway import start_in_thread
from tests.support.ledger import wait_for_records

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("body, field", [
    ({"model": "gemma-3-270m\u0000", "messages": HI}, "model"),
    ({"model": "gemma\u001b]52;c;aGk=\u0007", "messages": HI}, "model"),
    ({"model": "gemma\r\nX-Forged: 1", "messages": HI}, "model"),
    ({"model": "g\u202eemma", "messages": HI}, "model"),
    ({"model": "m" * 300, "messages": HI}, "model"),
    ({"model": "gemma-3-270m", "messages": [{"role": "user", "content": ""}] * 16000}, "messages"),
    ({"model": "gemma-3-270m", "messages": HI + [{"role": "assistant", "content": None, "tool_calls": [1]}]},
     "messages[1].tool_calls[0]"),
    ({"model": "gemma-3-270m", "messages": HI + [{"role": "assistant", "content": None,
                                                   "tool_calls": [{"function": "f"}]}]},
     "messages[1].tool_calls[0].function"),
    ({"model": "gemma-3-270m", "messages": HI + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}]},
     "messages[1].tool_calls[0].function.arguments"),
    ({"model": "gemma-3-270m", "messages": [{"role": "tool", "tool_call_id": "x\u0000", "content": "r"}]},
     "messages[0].tool_call_id"),
    ({"model": "gemma-3-270m", "messages": HI, "max_tokens": 2 ** 64}, "max_tokens"),
    ({"model": "gemma-3-270m", "messages": HI, "n": 10 ** 6}, "n"),
    ({"model": "gemma-3-270m", "messages": HI, "seed": 2 ** 70}, "seed"),
])
def test_bad_fields_are_refused_by_name(gateway, body, field):
    for stream in (False, True):
        reply = gateway.chat({**body, "stream": stream})
        assert reply.status_code == 400, reply.text
        assert reply.json()["code"] == "AI_MODEL_PARAM_INVALID" and f"`{field}`" in reply.json()["message"]
        assert "\u0000" not in reply.text and "\u001b" not in reply.text


def test_many_messages_are_refused_quickly_and_a_normal_request_still_works(gateway):
    """The 16,000-message body that held the engine for a minute is refused before any engine work."""
    reply = gateway.chat({"model": "gemma-3-270m", "messages": [{"role": "user", "content": ""}] * 16000})
    assert reply.status_code == 400 and reply.elapsed.total_seconds() < 10
    assert gateway.chat({"model": "gemma-3-270m", "messages": HI}).status_code == 200


def test_a_nul_in_the_model_does_not_stall_the_postgresql_ledger(tmp_path, fresh_postgres_url):
    gw = start_in_thread(tmp_path / "data", env={"CBGATE_DATABASE_URL": fresh_postgres_url})
    try:
        refused = gw.chat({"model": "gemma-3-270m\u0000", "messages": HI})
        assert refused.status_code == 400
        unknown = gw.chat({"model": "no-such\u00e9-model", "messages": HI})
        assert unknown.status_code == 400 and unknown.json()["code"] == "AI_MODEL_NOT_SUPPORTED"
        served = gw.chat({"model": "gemma-3-270m", "messages": HI})
        assert served.status_code == 200
        rows = wait_for_records(gw.admin.store, gw.env_id, 1,
                                where=lambda r: r.request_id == served.headers["x-request-id"])
        assert rows, "the ledger stopped draining"
    finally:
        gw.stop()


def test_group_names_with_control_characters_in_the_path_are_refused(gateway):
    for group in ("%00", "cloud%0abase", "%1b%5b31m"):
        reply = requests.post(f"{gateway.url}/v1/ai/{group}/chat/completions", headers=gateway.headers(),
                              json={"model": "gemma-3-270m", "messages": HI}, timeout=30)
        assert reply.status_code == 404 and reply.json()["code"] == "AI_MODEL_NOT_FOUND"
        assert "\u001b" not in reply.text and "\n" not in reply.json()["message"]


def test_an_assistant_thinking_block_on_the_messages_surface_is_no_500(gateway):
    """A Messages conversation that replays an assistant turn with a signed thinking block."""
    body = {"model": "gemma-3-270m", "max_tokens": 8, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                                          {"type": "text", "text": "hello"}]},
        {"role": "user", "content": "again"}]}
    reply = requests.post(f"{gateway.url}/v1/ai/cloudbase/v1/messages", json=body, headers=gateway.headers(),
                          timeout=30)
    assert reply.status_code == 200, reply.text
