"""An upstream's garbage is the upstream's fault: every malformed answer is a 502 AI_MODEL_REQUEST_FAILED
(or, once a stream has begun, its error event), never a 500, a SYS_ERR or a traceback; and reported
usage that is not a count is never billed or settled (issue 11: negative usage undid a tenant's quota)."""
from __future__ import annotations

import orjson
import pytest
import requests

from tests.support.ledger import wait_for_records
from tests.support.scripted_upstream import RawAnswer

GOOD_MESSAGE = {"role": "assistant", "content": "ok"}


def completion(**fields) -> bytes:
    body = {"id": "c1", "object": "chat.completion", "model": "upstream-model",
            "choices": [{"index": 0, "message": GOOD_MESSAGE, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    return orjson.dumps({**body, **fields})


def sse(*chunks) -> RawAnswer:
    data = b"".join(b"data: " + (c if isinstance(c, bytes) else orjson.dumps(c)) + b"\n\n" for c in chunks)
    return RawAnswer(data + b"data: [DONE]\n\n", "text/event-stream")


def chunk(delta=None, finish=None, **fields) -> dict:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "upstream-model",
            "choices": [{"index": 0, "delta": delta if delta is not None else {"content": "hi"},
                         "finish_reason": finish}], **fields}


BAD_JSON_ANSWERS = {
    "negative usage": completion(usage={"prompt_tokens": -1000000000, "completion_tokens": 1}),
    "usage as strings": completion(usage={"prompt_tokens": "12", "completion_tokens": 1}),
    "usage over 64 bits": b'{"choices":[{"message":{"role":"assistant","content":"x"}}],'
                          b'"usage":{"prompt_tokens":18446744073709551617,"completion_tokens":1}}',
    "usage over 2^53": completion(usage={"prompt_tokens": 2 ** 60, "completion_tokens": 1}),
    "fractional usage": completion(usage={"prompt_tokens": 1.5, "completion_tokens": 1}),
    "usage not an object": completion(usage=5),
    "choices of numbers": completion(choices=[1]),
    "choices a string": completion(choices="x"),
    "message a number": completion(choices=[{"index": 0, "message": 1}]),
    "message missing": completion(choices=[{"index": 0, "finish_reason": "stop"}]),
    "content an object": completion(choices=[{"message": {"role": "assistant", "content": {"a": 1}}}]),
    "tool_calls of numbers": completion(choices=[{"message": {"role": "assistant", "tool_calls": [1]}}]),
    "tool_calls a string": completion(choices=[{"message": {"role": "assistant", "tool_calls": "garbage"}}]),
    "tool call name a number": completion(choices=[{"message": {"role": "assistant", "content": None,
                                                                "tool_calls": [{"function": {"name": 1}}]}}]),
    "finish_reason a number": completion(choices=[{"message": GOOD_MESSAGE, "finish_reason": 7}]),
    "a JSON list": b"[1, 2]",
    "not JSON": b"<html>oops</html>",
    "nested too deep": b"[" * 100000 + b"]" * 100000,
}

BAD_STREAMS = {
    "delta a number": sse(chunk(delta=1)),
    "choices of numbers": sse({"id": "c1", "choices": [1]}),
    "choices a string": sse({"id": "c1", "choices": "x"}),
    "delta tool_calls of numbers": sse(chunk(delta={"tool_calls": [1]})),
    "delta content an object": sse(chunk(delta={"content": {}})),
    "arguments a number": sse(chunk(delta={"tool_calls": [{"index": 0, "function": {"arguments": 5}}]})),
    "negative usage at the end": sse(chunk(), chunk(delta={}, finish="stop"),
                                     {"id": "c1", "choices": [], "usage": {"prompt_tokens": -5,
                                                                           "completion_tokens": 1}}),
    "usage a string": sse(chunk(), {"id": "c1", "choices": [], "usage": "lots"}),
    "an event that is a number": sse(b"123"),
    "an event that is not JSON": sse(chunk(), b"{nope"),
    "finish_reason an object": sse(chunk(finish={"x": 1})),
}

ANTHROPIC_ANSWERS = {
    "content of numbers": orjson.dumps({"type": "message", "content": [1], "usage": {"input_tokens": 1}}),
    "content a string": orjson.dumps({"type": "message", "content": "abc"}),
    "negative usage": orjson.dumps({"type": "message", "content": [{"type": "text", "text": "x"}],
                                    "usage": {"input_tokens": -100, "output_tokens": 1}}),
    "usage as text": orjson.dumps({"type": "message", "content": [], "usage": {"input_tokens": "x"}}),
    "usage a list": orjson.dumps({"type": "message", "content": [], "usage": [1]}),
}


def anthropic_stream(*events) -> RawAnswer:
    return RawAnswer(b"".join(b"event: x\ndata: " + orjson.dumps(e) + b"\n\n" for e in events), "text/event-stream")


ANTHROPIC_STREAMS = {
    "message a number": anthropic_stream({"type": "message_start", "message": 1}),
    "delta a string": anthropic_stream({"type": "message_start", "message": {"usage": {"input_tokens": 1}}},
                                       {"type": "content_block_delta", "index": 0, "delta": "x"}),
    "negative output usage": anthropic_stream(
        {"type": "message_start", "message": {"usage": {"input_tokens": 1}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": -7}}),
    "block a number": anthropic_stream({"type": "message_start", "message": {}},
                                       {"type": "content_block_start", "index": 0, "content_block": 3}),
}


def ask(gw, model: str, stream: bool = False) -> requests.Response:
    return gw.chat({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream})


def assert_upstream_failure(reply: requests.Response) -> None:
    """The rule: a 502 with AI_MODEL_REQUEST_FAILED, or a 200 stream whose last event carries that code."""
    assert "Traceback" not in reply.text and "SYS_ERR" not in reply.text
    if reply.status_code == 502:
        assert reply.json()["code"] == "AI_MODEL_REQUEST_FAILED"
        return
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream"), reply.text
    last = [line for line in reply.text.splitlines() if line.startswith("data: ")][-1]
    assert last != "data: [DONE]", reply.text
    assert orjson.loads(last[6:])["code"] == "AI_MODEL_REQUEST_FAILED"


@pytest.mark.parametrize("name", BAD_JSON_ANSWERS)
def test_malformed_answers_are_the_upstreams_failure(scripted_gateway, upstream, name):
    upstream.answer(RawAnswer(BAD_JSON_ANSWERS[name]))
    assert_upstream_failure(ask(scripted_gateway, "up-openai"))


@pytest.mark.parametrize("name", BAD_STREAMS)
def test_malformed_streams_end_with_the_upstreams_failure(scripted_gateway, upstream, name):
    upstream.answer(BAD_STREAMS[name])
    assert_upstream_failure(ask(scripted_gateway, "up-openai", stream=True))


@pytest.mark.parametrize("name", ANTHROPIC_ANSWERS)
def test_malformed_anthropic_answers_are_the_upstreams_failure(scripted_gateway, upstream, name):
    upstream.answer(RawAnswer(ANTHROPIC_ANSWERS[name]))
    assert_upstream_failure(ask(scripted_gateway, "up-anthropic"))


@pytest.mark.parametrize("name", ANTHROPIC_STREAMS)
def test_malformed_anthropic_streams_end_with_the_upstreams_failure(scripted_gateway, upstream, name):
    upstream.answer(ANTHROPIC_STREAMS[name])
    assert_upstream_failure(ask(scripted_gateway, "up-anthropic", stream=True))


def test_negative_usage_is_never_billed(scripted_gateway, upstream):
    before = scripted_gateway.admin.usage_summary(scripted_gateway.env_id)["prompt_tokens"]
    for _ in range(3):
        upstream.answer(RawAnswer(completion(usage={"prompt_tokens": -1000000000, "completion_tokens": 0})))
        assert ask(scripted_gateway, "up-openai").status_code == 502
    upstream.answer(RawAnswer(completion(usage={"prompt_tokens": 5, "completion_tokens": 2})))
    good = ask(scripted_gateway, "up-openai")
    assert good.status_code == 200 and good.json()["usage"]["total_tokens"] == 7
    records = wait_for_records(scripted_gateway.admin.store, scripted_gateway.env_id, 1,
                               where=lambda r: r.request_id == good.headers["x-request-id"])
    assert records[0].prompt_tokens == 5
    summary = scripted_gateway.admin.usage_summary(scripted_gateway.env_id)
    assert summary["prompt_tokens"] >= before + 5 and summary["prompt_tokens"] >= 0
