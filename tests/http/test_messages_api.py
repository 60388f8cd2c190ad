"""The Anthropic Messages surface through the official `anthropic` SDK, unchanged: on the embedded engine,
an OpenAI-compatible upstream (translated) and an Anthropic upstream (passed through)."""
from __future__ import annotations

import json

import anthropic
import pytest
import requests

from tests.support.fake_upstream import Reply
from tests.support.ledger import wait_for_records

WEATHER = {"name": "get_weather", "description": "weather of a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
TOOL_CALLS = [{"id": "call_1", "type": "function",
               "function": {"name": "get_weather", "arguments": json.dumps({"city": "Shenzhen"})}}]
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def client(surfaces):
    # the SDK's auth_token sends `Authorization: Bearer`, as CloudBase's docs say
    return anthropic.Anthropic(base_url=surfaces.base(), auth_token=surfaces.gw.key, max_retries=0)


def surfaces_headers(client) -> dict:
    return {"Authorization": f"Bearer {client.auth_token}"}


def test_create_on_the_embedded_engine(client):
    message = client.messages.create(model="gemma-3-270m", max_tokens=64, messages=[
        {"role": "user", "content": [{"type": "text", "text": "ping me"}]}], system="be brief")
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and "ping me" in message.content[0].text  # the fake engine echoes
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_x_api_key_is_accepted_as_well(surfaces, fake):
    client = anthropic.Anthropic(base_url=surfaces.base(), api_key=surfaces.gw.key, max_retries=0)
    assert client.messages.create(model="up-openai", max_tokens=16, messages=HELLO).content[0].text


def test_stream_from_an_openai_upstream_is_the_anthropic_event_sequence(client, fake):
    fake.default = Reply(events=3)
    raw = requests.post(client.base_url.__str__().rstrip("/") + "/v1/messages", headers=surfaces_headers(client),
                        json={"model": "up-openai", "max_tokens": 64, "messages": HELLO, "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    kinds = [line[len("event: "):] for line in raw.text.splitlines() if line.startswith("event: ")]
    assert kinds == ["message_start", "ping", "content_block_start"] + ["content_block_delta"] * 3 + [
        "content_block_stop", "message_delta", "message_stop"]
    with client.messages.stream(model="up-openai", max_tokens=64, messages=HELLO) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "t0 t1 t2 "
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3 and final.usage.input_tokens == 2
    sent = fake.chat_requests[-1].json()  # translated: an OpenAI chat body
    assert sent["messages"] == [{"role": "user", "content": "hello there"}] and sent["model"] == "upstream-model"


def test_tools_translated_both_ways(client, fake):
    fake.default = Reply(content="", tool_calls=TOOL_CALLS)
    message = client.messages.create(model="up-openai", max_tokens=64, tools=[WEATHER],
                                     tool_choice={"type": "any"}, messages=HELLO)
    assert message.stop_reason == "tool_use"
    block = next(b for b in message.content if b.type == "tool_use")
    assert (block.id, block.name, block.input) == ("call_1", "get_weather", {"city": "Shenzhen"})
    sent = fake.chat_requests[-1].json()
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    assert sent["tool_choice"] == "required"
    # the tool's result goes back as a tool message
    client.messages.create(model="up-openai", max_tokens=64, tools=[WEATHER], messages=HELLO + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather",
                                           "input": {"city": "Shenzhen"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}]}])
    sent = fake.chat_requests[-1].json()["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def test_streamed_tool_use_arrives_as_input_json_deltas(client, fake):
    fake.default = Reply(content="", tool_calls=TOOL_CALLS)
    with client.messages.stream(model="up-openai", max_tokens=64, tools=[WEATHER], messages=HELLO) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert deltas.count("input_json_delta") == 2
    assert final.content[-1].input == {"city": "Shenzhen"} and final.stop_reason == "tool_use"


def test_anthropic_upstream_gets_the_body_unchanged_and_cache_tokens_are_metered(surfaces, client, fake):
    fake.default = Reply(events=2, reasoning="let me think",
                         usage_extra={"cache_read_input_tokens": 7, "cache_creation_input_tokens": 5})
    system = [{"type": "text", "text": "a long shared prefix", "cache_control": {"type": "ephemeral"}}]
    with client.messages.stream(model="up-anthropic", max_tokens=64, system=system, messages=HELLO,
                                thinking={"type": "enabled", "budget_tokens": 1024},
                                extra_body={"top_k": 5}) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    sent = fake.chat_requests[-1]
    assert sent.path.endswith("/v1/messages")
    body = sent.json()
    assert body["system"] == system and body["top_k"] == 5 and body["thinking"]["type"] == "enabled"
    assert body["model"] == "upstream-model" and body["stream"] is True
    assert "thinking_delta" in deltas and final.content[0].type == "thinking"
    assert final.content[0].signature == "sig"  # Anthropic checks it when the block is sent back
    assert final.content[-1].text == "t0 t1 "
    assert (final.usage.cache_read_input_tokens, final.usage.cache_creation_input_tokens) == (7, 5)
    rows = wait_for_records(surfaces.gw.admin.store, surfaces.gw.env_id, 1,
                            where=lambda r: r.model == "up-anthropic" and r.cache_read_tokens == 7)
    assert rows and rows[0].surface == "messages" and rows[0].cache_creation_tokens == 5
    assert rows[0].prompt_tokens == final.usage.input_tokens + 12


def test_errors_carry_both_envelopes(surfaces, client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="up-openai", messages=[], max_tokens=8)
    assert caught.value.body["code"] == "AI_MODEL_PARAM_INVALID" and "messages" in str(caught.value)
    reply = requests.post(surfaces.base() + "/v1/messages", headers=surfaces.gw.headers(),
                          json={"model": "up-openai", "messages": HELLO})
    body = reply.json()
    assert reply.status_code == 400 and body["code"] == "AI_MODEL_PARAM_REQUIRED" and body["requestId"]
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    wrong_method = requests.get(surfaces.base() + "/v1/messages", headers=surfaces.gw.headers()).json()
    assert wrong_method["type"] == "error" and wrong_method["code"] == "INVALID_PATH"
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=surfaces.base(), api_key="cbsk_wrong", max_retries=0).messages.create(
            model="up-openai", max_tokens=8, messages=HELLO)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="no-such-model", max_tokens=8, messages=HELLO)
    assert caught.value.body["code"] == "AI_MODEL_NOT_SUPPORTED"


@pytest.mark.parametrize("turns", [
    [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": 5}]}],
    [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": True}]}],
    [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                   "content": [{"type": "text", "text": 5}]}]}],
    [*HELLO, {"role": "assistant", "content": [{"type": "thinking", "thinking": 5, "signature": "s"}]}, *HELLO],
    [*HELLO, {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": [1]}]}, *HELLO],
])
def test_malformed_tool_results_and_thinking_are_refused_not_a_500(surfaces, turns):
    reply = requests.post(surfaces.base() + "/v1/messages", headers=surfaces.gw.headers(),
                          json={"model": "up-openai", "max_tokens": 8, "messages": turns})
    assert reply.status_code == 400 and reply.json()["code"] == "AI_MODEL_PARAM_INVALID"


def test_a_failure_mid_stream_is_an_error_event(surfaces, fake):
    fake.default = Reply(events=5, error_after=2)
    reply = requests.post(surfaces.base() + "/v1/messages", headers=surfaces.gw.headers(), stream=True,
                          json={"model": "up-openai", "max_tokens": 32, "messages": HELLO, "stream": True})
    lines = reply.text.splitlines()
    assert reply.status_code == 200 and "event: message_start" in lines
    assert lines[-2].startswith("data: ") and lines[-3] == "event: error"
    error = json.loads(lines[-2][6:])
    assert error["type"] == "error" and error["code"] == "AI_MODEL_REQUEST_FAILED" and error["error"]["message"]
    assert "event: message_stop" not in lines
    client = anthropic.Anthropic(base_url=surfaces.base(), auth_token=surfaces.gw.key, max_retries=0)
    with pytest.raises(anthropic.APIStatusError):
        with client.messages.stream(model="up-openai", max_tokens=32, messages=HELLO) as stream:
            for _ in stream:
                pass


def test_count_tokens(client):
    counted = client.messages.count_tokens(model="gemma-3-270m", messages=HELLO)
    longer = client.messages.count_tokens(model="gemma-3-270m", messages=[
        {"role": "user", "content": "hello there " * 50}])
    assert 0 < counted.input_tokens < longer.input_tokens


def test_usage_is_recorded_under_the_messages_surface(surfaces, client, fake):
    message = client.messages.create(model="up-openai", max_tokens=16, messages=HELLO)
    rows = wait_for_records(surfaces.gw.admin.store, surfaces.gw.env_id, 1,
                            where=lambda r: r.request_id == message.id.removeprefix("msg_"))
    assert len(rows) == 1 and rows[0].surface == "messages" and rows[0].model == "up-openai"
    assert (rows[0].prompt_tokens, rows[0].completion_tokens) == (message.usage.input_tokens,
                                                                  message.usage.output_tokens)


def test_thinking_signature_comes_back_from_an_anthropic_upstream(client, fake):
    fake.default = Reply(reasoning="step by step")
    message = client.messages.create(model="up-anthropic", max_tokens=64, messages=HELLO,
                                     thinking={"type": "enabled", "budget_tokens": 1024})
    assert (message.content[0].type, message.content[0].signature) == ("thinking", "sig-fake")
