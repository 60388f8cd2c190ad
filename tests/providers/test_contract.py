"""The provider contract, run over every adapter through a running gateway: the OpenAI-compatible and
Anthropic upstream adapters (over the fake upstream) and the embedded engine (over the fake llama-server)."""
from __future__ import annotations

import time

import pytest
import requests

from tests.support.fake_upstream import Reply
from tests.support.sse import read_events
from tests.support.wait import wait_until

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hello"}]


class Backend:
    """How a test makes one adapter's answers slow and reads how much it has produced."""

    def __init__(self, model: str, fake=None, engine=None):
        self.model = model
        self.fake = fake
        self.engine = engine

    def make_slow(self) -> None:
        if self.fake is None:
            self.engine.script(token_delay=0.02)
        else:
            self.fake.default = Reply(events=400, chunk_delay=0.02)

    def produced_when_stopped(self) -> int:
        """How much it produced once it noticed the client had gone (and stopped)."""
        if self.fake is not None:
            return self.fake.wait_for(lambda s: s["streams_aborted"] >= 1)["completion_tokens"]
        wait_until(lambda: self.engine.stats()["running"] == 0, what="the engine to stop the sequence")
        return self.engine.generated()


@pytest.fixture(params=["up-openai", "up-anthropic", "gemma-3-270m"])
def backend(request, fake, upstream_gateway):
    if request.param == "gemma-3-270m":
        upstream_gateway.engine.script(token_delay=None)
        yield Backend(request.param, engine=upstream_gateway.engine)
        upstream_gateway.engine.script(token_delay=None)
    else:
        yield Backend(request.param, fake)


def test_answer_has_the_openai_shape_with_our_model_name_and_usage(upstream_gateway, backend):
    r = upstream_gateway.chat({"model": backend.model, "messages": MESSAGES})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == backend.model
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_has_chunks_one_finish_and_usage_only_when_asked(upstream_gateway, backend, include_usage):
    body = {"model": backend.model, "messages": MESSAGES, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    r = upstream_gateway.chat(body, stream=True)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = read_events(r)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == backend.model for c in chunks)
    usage_chunks = [c for c in chunks if "usage" in c and not c["choices"]]
    if include_usage:
        assert len(usage_chunks) == 1 and chunks[-1] is usage_chunks[0]
        assert usage_chunks[0]["usage"]["completion_tokens"] > 0
    else:
        assert usage_chunks == []
    with_choices = [c for c in chunks if c["choices"]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in with_choices)
    assert text.strip()
    assert [c["choices"][0]["finish_reason"] for c in with_choices if c["choices"][0]["finish_reason"]] == ["stop"]


def test_client_disconnect_stops_the_generation(upstream_gateway, backend):
    backend.make_slow()
    long_prompt = [{"role": "user", "content": "word " * 300}]  # the fake engine echoes it: 750 tokens
    r = upstream_gateway.chat({"model": backend.model, "messages": long_prompt, "stream": True}, stream=True)
    lines = r.iter_lines()
    for _ in range(6):  # a few events, then the client goes away
        next(lines)
    r.close()
    assert backend.produced_when_stopped() < 100  # far from the 400 (or whole echo) it would have produced


def test_the_model_is_listed_for_the_env(upstream_gateway, backend):
    r = requests.get(upstream_gateway.url + "/v1/ai/cloudbase/v1/models", headers=upstream_gateway.headers(),
                     timeout=10)
    assert backend.model in [m["id"] for m in r.json()["data"]]
