"""Upstream failures as clients see them: before the first byte a JSON error (after retries and
fallback), after it a final SSE error event and no [DONE]; timeouts are 504; no secret leaks."""
from __future__ import annotations

import logging
import time

import pytest
import requests

from tests.providers.conftest import SECRET
from tests.support.fake_upstream import Reply
from tests.support.sse import read_events


def chat_body(model: str = "up-openai", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi there"}], **extra}


def assert_failed(r, status: int, *words: str, code: str = "AI_MODEL_REQUEST_FAILED") -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code and body["requestId"]
    for word in words:
        assert word in body["message"], body["message"]
    return body


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_refusing_the_clients_request_is_passed_back_without_retry(upstream_gateway, fake, stream):
    fake.script(Reply(status=400, error="context length exceeded"))
    r = upstream_gateway.chat(chat_body(stream=stream))
    assert_failed(r, 400, "400", "context length exceeded", code="AI_MODEL_PARAM_INVALID")
    assert len(fake.chat_requests) == 1


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("status", [400, 422])
def test_a_refusal_of_the_clients_request_does_not_fall_back(upstream_gateway, fake, other_fake, stream, status):
    other_fake.default = Reply(status=status, error="'temperature' must be at most 2")
    r = upstream_gateway.chat(chat_body("up-fallback", stream=stream))
    assert_failed(r, status, "temperature", code="AI_MODEL_PARAM_INVALID")
    assert len(other_fake.chat_requests) == 1 and len(fake.chat_requests) == 0  # the next one was never asked


def test_a_deployment_refusing_our_key_falls_back(upstream_gateway, fake, other_fake):
    other_fake.default = Reply(status=401, error="invalid api key")
    r = upstream_gateway.chat(chat_body("up-fallback"))
    assert r.status_code == 200 and len(other_fake.chat_requests) == 1 and len(fake.chat_requests) == 1


def test_server_errors_are_retried_until_an_answer(upstream_gateway, fake):
    fake.script(Reply(status=503), Reply(status=500))
    r = upstream_gateway.chat(chat_body())
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
    assert len(fake.chat_requests) == 3


def test_persistent_server_errors_give_up_after_three_tries(upstream_gateway, fake):
    fake.default = Reply(status=503, error="overloaded")
    assert_failed(upstream_gateway.chat(chat_body()), 502, "503", "overloaded")
    assert len(fake.chat_requests) == 3


def test_rate_limit_retry_after_is_honoured(upstream_gateway, fake):
    fake.script(Reply(status=429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    r = upstream_gateway.chat(chat_body(stream=True), stream=True)
    assert r.status_code == 200 and read_events(r)[-1] == "[DONE]"
    assert time.monotonic() - started >= 0.95
    assert len(fake.chat_requests) == 2


def test_a_long_retry_after_is_not_waited_for_but_passed_on(upstream_gateway, fake):
    fake.script(Reply(status=429, headers={"Retry-After": "120"}, error="slow down"))
    r = upstream_gateway.chat(chat_body())
    assert_failed(r, 502, "429", "slow down")
    assert r.headers["retry-after"] == "120" and len(fake.chat_requests) == 1  # no second try


@pytest.mark.parametrize("stream", [False, True])
def test_an_error_object_in_a_200_body_is_a_failure(upstream_gateway, fake, stream):
    fake.script(Reply(body='{"error": {"message": "quota exhausted", "type": "insufficient_quota"}}'))
    assert_failed(upstream_gateway.chat(chat_body(stream=stream)), 502, "quota exhausted")


def test_a_body_that_is_not_json_is_a_failure(upstream_gateway, fake):
    fake.script(Reply(body="<html>bad gateway</html>"))
    assert_failed(upstream_gateway.chat(chat_body()), 502, "not JSON")


@pytest.mark.parametrize("failure, words", [
    ({"error_after": 2, "error": "engine crashed"}, "engine crashed"),
    ({"malformed_after": 2}, "malformed"),
    ({"reset_after": 2}, "broke off"),
])
@pytest.mark.parametrize("model", ["up-openai", "up-anthropic"])
def test_failure_after_the_first_byte_ends_with_an_error_event_and_no_done(upstream_gateway, fake, model,
                                                                           failure, words):
    fake.script(Reply(events=5, **failure))
    r = upstream_gateway.chat(chat_body(model, stream=True, stream_options={"include_usage": True}), stream=True)
    assert r.status_code == 200
    events = read_events(r)
    assert "[DONE]" not in events
    contents = [e["choices"][0]["delta"].get("content") for e in events[:-1] if e.get("choices")]
    assert "t0 " in contents and "t1 " in contents
    last = events[-1]
    assert last["code"] == "AI_MODEL_REQUEST_FAILED" and last["requestId"] and words in last["message"]


@pytest.mark.timing
@pytest.mark.parametrize("stream", [False, True])
def test_no_first_byte_in_time_is_a_504(upstream_gateway, fake, stream):
    fake.script(Reply(first_byte_delay=3))
    started = time.monotonic()
    assert_failed(upstream_gateway.chat(chat_body("up-quick", stream=stream)), 504, "no")
    assert time.monotonic() - started < 2.5  # the first-byte timeout is 0.5 s; the answer would take 3 s
    fake.wait_for(lambda s: s["requests"] >= 1)


def test_headers_without_a_first_event_in_time_is_a_504(upstream_gateway, fake):
    fake.script(Reply(chunk_delay=1.5))  # the status line comes at once, the first event does not
    assert_failed(upstream_gateway.chat(chat_body("up-quick", stream=True)), 504, "first event")


def test_an_idle_stream_ends_with_a_timeout_event_and_the_upstream_is_closed(upstream_gateway, fake):
    fake.script(Reply(events=5, stall_after=2))
    events = read_events(upstream_gateway.chat(chat_body("up-quick", stream=True), stream=True))
    assert "[DONE]" not in events and "quiet" in events[-1]["message"]
    fake.wait_for(lambda s: s["streams_aborted"] >= 1)


def test_the_total_timeout_bounds_a_non_streaming_call(upstream_gateway, fake):
    fake.script(Reply(first_byte_delay=1.5))  # within its first-byte timeout (5 s), past its total (0.5 s)
    assert_failed(upstream_gateway.chat(chat_body("up-total")), 504, "0.5s")


@pytest.mark.parametrize("stream", [False, True])
def test_a_failing_deployment_falls_back_to_the_next(upstream_gateway, fake, other_fake, stream):
    other_fake.default = Reply(status=404, error="this deployment is broken")
    r = upstream_gateway.chat(chat_body("up-fallback", stream=stream), stream=stream)
    assert r.status_code == 200
    if stream:
        assert read_events(r)[-1] == "[DONE]"
    assert len(other_fake.chat_requests) == 1 and len(fake.chat_requests) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_deployment_that_times_out_falls_back_to_the_next(upstream_gateway, fake, other_fake, stream):
    other_fake.default = Reply(first_byte_delay=2)
    r = upstream_gateway.chat(chat_body("up-slow-fallback", stream=stream), stream=stream)
    assert r.status_code == 200 and len(fake.chat_requests) == 1


def test_an_unreachable_deployment_is_retried_then_falls_back(upstream_gateway, fake):
    r = upstream_gateway.chat(chat_body("up-dead"))
    assert r.status_code == 200 and len(fake.chat_requests) == 1


def test_redirects_are_not_followed(upstream_gateway, fake):
    fake.script(Reply(status=302, headers={"Location": fake.url + "/chat/completions"}))
    assert_failed(upstream_gateway.chat(chat_body()), 502, "redirect")
    assert len(fake.chat_requests) == 1


def test_secrets_never_reach_error_bodies_logs_or_the_upstream(upstream_gateway, fake, caplog):
    caplog.set_level(logging.DEBUG)
    canary = upstream_gateway.key
    fake.script(Reply(status=401, error=f"Incorrect API key provided: {SECRET}"),
                *[Reply(status=503, error=f"overloaded, key {SECRET}")] * 3)
    first = upstream_gateway.chat(chat_body())
    second = upstream_gateway.chat(chat_body(stream=True))
    for r in (first, second):
        assert_failed(r, 502, "***")
        assert SECRET not in r.text and canary not in r.text
    assert "retrying" in caplog.text  # the retries were logged ...
    assert SECRET not in caplog.text and canary not in caplog.text  # ... without either key
    assert canary.encode() not in fake.all_traffic()
    assert all(r.headers.get("authorization") == f"Bearer {SECRET}" for r in fake.chat_requests)


def test_a_client_leaving_a_non_streaming_call_closes_the_upstream_request(upstream_gateway, fake):
    fake.script(Reply(first_byte_delay=3))
    with pytest.raises(requests.Timeout):
        requests.post(upstream_gateway.chat_url(), json=chat_body(), headers=upstream_gateway.headers(), timeout=0.3)
    fake.wait_for(lambda s: s["requests_aborted"] >= 1)


@pytest.mark.parametrize("stream", [False, True])
def test_when_every_deployment_fails_each_is_logged_and_the_client_gets_the_last(upstream_gateway, fake, other_fake,
                                                                               stream, caplog):
    other_fake.default = Reply(status=404, error="the first deployment is broken")
    fake.default = Reply(status=401, error="the second deployment refuses our key")
    with caplog.at_level(logging.WARNING, logger="cbgate.fallback"):
        r = upstream_gateway.chat(chat_body("up-fallback", stream=stream))
    assert_failed(r, 502, "the second deployment refuses our key")
    skipped = [rec.getMessage() for rec in caplog.records if rec.name == "cbgate.fallback"]
    assert any("openai-other" in m and "the first deployment is broken" in m for m in skipped), skipped
    assert any("openai-main" in m and "the second deployment refuses our key" in m for m in skipped), skipped
    assert all(r.json()["requestId"] in m for m in skipped)  # each line says which request it was
