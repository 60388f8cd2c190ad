"""The Anthropic-protocol adapter: what the upstream receives, and what an OpenAI client gets back,
in JSON and in streams, through a running gateway."""
from __future__ import annotations

import json

from tests.providers.conftest import SECRET
from tests.support.fake_upstream import Reply
from tests.support.sse import read_events

CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "weather of a city",
                                           "parameters": CITY}}]
TOOL_CALLS = [{"id": "toolu_1", "type": "function",
               "function": {"name": "get_weather", "arguments": json.dumps({"city": "Shenzhen"})}}]
PIXEL = "data:image/png;base64,iVBORw0KGgo="


def chat_body(**extra) -> dict:
    return {"model": "up-anthropic", "messages": [{"role": "user", "content": "hi there"}], **extra}


def test_the_request_is_translated_to_messages_with_the_group_secret(upstream_gateway, fake):
    body = chat_body(tools=TOOLS, tool_choice="required", stop="END", temperature=0.2, top_k=5, messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what is here?"},
                                     {"type": "image_url", "image_url": {"url": PIXEL}}]},
        {"role": "assistant", "content": None, "tool_calls": TOOL_CALLS},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "user", "content": "thanks"}])
    assert upstream_gateway.chat(body).status_code == 200
    got = fake.chat_requests[-1]
    assert got.path == "/v1/messages"
    assert got.headers["x-api-key"] == SECRET and got.headers["anthropic-version"]
    assert "authorization" not in got.headers
    sent = got.json()
    assert sent["model"] == "upstream-model" and sent["system"] == "be brief"
    assert sent["max_tokens"] == 4096 and sent["stop_sequences"] == ["END"]
    assert sent["temperature"] == 0.2 and sent["top_k"] == 5  # a field only Anthropic knows passes on
    assert sent["tools"] == [{"name": "get_weather", "description": "weather of a city",
                              "input_schema": TOOLS[0]["function"]["parameters"]}]
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "what is here?"}, {"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Shenzhen"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                                     {"type": "text", "text": "thanks"}]},
    ]
    assert upstream_gateway.key.encode() not in fake.all_traffic()


def test_max_tokens_from_the_client_is_kept(upstream_gateway, fake):
    upstream_gateway.chat(chat_body(max_tokens=33))
    assert fake.chat_requests[-1].json()["max_tokens"] == 33


def test_tool_use_and_thinking_come_back_as_openai_fields(upstream_gateway, fake):
    fake.script(Reply(content="", tool_calls=TOOL_CALLS, reasoning="weather needs a tool"))
    choice = upstream_gateway.chat(chat_body(tools=TOOLS)).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["reasoning_content"] == "weather needs a tool"
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "toolu_1" and json.loads(call["function"]["arguments"]) == {"city": "Shenzhen"}


def test_streamed_tool_use_and_thinking_become_deltas(upstream_gateway, fake):
    fake.script(Reply(content="let me look", tool_calls=TOOL_CALLS, reasoning="weather needs a tool"))
    events = read_events(upstream_gateway.chat(chat_body(tools=TOOLS, stream=True,
                                                         stream_options={"include_usage": True}), stream=True))
    assert events[-1] == "[DONE]"
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    assert deltas[0]["role"] == "assistant"
    assert "".join(d.get("reasoning_content", "") for d in deltas).strip() == "weather needs a tool"
    assert "".join(d.get("content", "") for d in deltas) == "let me look"
    calls = [c for d in deltas for c in d.get("tool_calls", [])]
    assert calls[0]["id"] == "toolu_1" and calls[0]["function"]["name"] == "get_weather"
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Shenzhen"}
    finishes = [e["choices"][0]["finish_reason"] for e in events[:-1] if e["choices"]]
    assert [f for f in finishes if f] == ["tool_calls"]
    assert events[-2]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_stop_reasons_map_to_finish_reasons(upstream_gateway, fake):
    fake.script(Reply(finish_reason="length"), Reply(finish_reason="length"))
    assert upstream_gateway.chat(chat_body()).json()["choices"][0]["finish_reason"] == "length"
    events = read_events(upstream_gateway.chat(chat_body(stream=True), stream=True))
    assert [e["choices"][0]["finish_reason"] for e in events[:-1] if e["choices"][0]["finish_reason"]] == ["length"]


def test_anthropic_error_bodies_keep_their_reason(upstream_gateway, fake):
    fake.script(Reply(status=400, error="prompt is too long"))
    r = upstream_gateway.chat(chat_body())
    assert r.status_code == 400 and "prompt is too long" in r.json()["message"]
    fake.script(Reply(status=529, error="overloaded"), Reply(status=529, error="overloaded"),
                Reply(status=529, error="overloaded"))
    r = upstream_gateway.chat(chat_body())
    assert r.status_code == 502 and "overloaded" in r.json()["message"]


def test_usage_is_estimated_when_the_upstream_reports_none(upstream_gateway, fake):
    fake.script(Reply(content="one two three four", usage=False))
    usage = upstream_gateway.chat(chat_body()).json()["usage"]
    assert usage["completion_tokens"] == 4 and usage["prompt_tokens"] > 0
