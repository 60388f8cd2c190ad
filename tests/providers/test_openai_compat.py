"""The OpenAI-compatible adapter through a running gateway: faithful pass-through, usage, tool calls
and reasoning, in JSON and in streams."""
from __future__ import annotations

import json

from tests.providers.conftest import SECRET
from tests.support.fake_upstream import Reply
from tests.support.sse import read_events

CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "weather of a city",
                                           "parameters": CITY}}]
TOOL_CALLS = [{"id": "call_1", "type": "function",
               "function": {"name": "get_weather", "arguments": json.dumps({"city": "Shenzhen"})}}]


def chat_body(**extra) -> dict:
    return {"model": "up-openai", "messages": [{"role": "user", "content": "hi there"}], **extra}


def test_request_reaches_the_upstream_faithfully_with_the_group_secret(upstream_gateway, fake):
    body = chat_body(tools=TOOLS, tool_choice="auto", response_format={"type": "json_object"}, stop=["END"],
                     seed=7, n=2, temperature=0.3, vendor_flag={"deep": [1, 2]},
                     messages=[{"role": "user", "content": "weather?"},
                               {"role": "assistant", "content": None, "tool_calls": TOOL_CALLS},
                               {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}])
    assert upstream_gateway.chat(body).status_code == 200
    got = fake.chat_requests[-1]
    sent = got.json()
    assert sent["model"] == "upstream-model"  # the deployment's name for it
    for field in ("tools", "tool_choice", "response_format", "stop", "seed", "n", "temperature", "vendor_flag",
                  "messages"):
        assert sent[field] == body[field], field
    assert got.headers["authorization"] == f"Bearer {SECRET}"
    assert upstream_gateway.key.encode() not in fake.all_traffic()


def test_streams_ask_the_upstream_for_usage_and_keep_client_stream_options(upstream_gateway, fake):
    r = upstream_gateway.chat(chat_body(stream=True, stream_options={"include_usage": False, "x": 1}), stream=True)
    events = read_events(r)
    assert fake.chat_requests[-1].json()["stream_options"] == {"include_usage": True, "x": 1}
    chunks = [e for e in events if isinstance(e, dict)]
    assert not any(c["choices"] == [] for c in chunks)  # the upstream's separate usage chunk stays here
    assert [c for c in chunks if "usage" in c] == [chunks[-1]]  # its counts ride on the finishing chunk
    assert chunks[-1]["choices"][0]["finish_reason"]


def test_tool_calls_and_reasoning_survive_in_json(upstream_gateway, fake):
    fake.script(Reply(content="", tool_calls=TOOL_CALLS, reasoning="the user wants weather"))
    message = upstream_gateway.chat(chat_body(tools=TOOLS)).json()["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    assert message["message"]["tool_calls"] == TOOL_CALLS
    assert message["message"]["reasoning_content"] == "the user wants weather"


def test_streamed_tool_call_deltas_and_reasoning_deltas_survive(upstream_gateway, fake):
    fake.script(Reply(content="", tool_calls=TOOL_CALLS, reasoning="thinking it over"))
    events = read_events(upstream_gateway.chat(chat_body(tools=TOOLS, stream=True), stream=True))
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    assert "".join(d.get("reasoning_content", "") for d in deltas).strip() == "thinking it over"
    calls = [c for d in deltas for c in d.get("tool_calls", [])]
    assert calls[0]["id"] == "call_1" and calls[0]["function"]["name"] == "get_weather"
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Shenzhen"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls" and events[-1] == "[DONE]"


def test_upstream_usage_is_passed_on(upstream_gateway, fake):
    fake.script(Reply(events=9))
    usage = upstream_gateway.chat(chat_body()).json()["usage"]
    assert usage["completion_tokens"] == 9 and usage["prompt_tokens"] == 2  # the fake's own count


def test_usage_is_estimated_when_the_upstream_reports_none(upstream_gateway, fake):
    fake.script(Reply(content="one two three four", usage=False), Reply(content="one two three four", usage=False))
    usage = upstream_gateway.chat(chat_body()).json()["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] == 4  # cl100k: four common words
    events = read_events(upstream_gateway.chat(chat_body(stream=True, stream_options={"include_usage": True}),
                                               stream=True))
    assert events[-2]["usage"]["completion_tokens"] == 4 and events[-1] == "[DONE]"


def test_stream_chunks_carry_the_public_model_name(upstream_gateway, fake):
    events = read_events(upstream_gateway.chat(chat_body(stream=True), stream=True))
    assert {e["model"] for e in events[:-1]} == {"up-openai"}  # the fake answers with "upstream-model"
