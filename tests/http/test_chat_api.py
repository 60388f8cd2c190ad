"""The chat API's shapes as clients see them, over the scripted engine (fast, deterministic)."""
import json
import threading

import pytest
import requests

from tests.support.chat import EMBEDDED_MODEL, ask
from tests.support.sse import deltas, read_events
from tests.support.wait import wait_until

MODEL = EMBEDDED_MODEL


def fake_tokens(text: str) -> int:
    return (len(text.encode()) + 1) // 2  # the fake engine's tokens are two bytes


@pytest.mark.parametrize("path", ["/v1/ai/cloudbase/chat/completions", "/v1/ai/cloudbase/v1/chat/completions"])
def test_non_streaming_body_has_exactly_the_seed_shape(gateway, path):
    r = requests.post(gateway.url + path, json=ask("介绍一下李白"), headers=gateway.headers())
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert isinstance(body["created"], int) and body["model"] == MODEL
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "echo: 介绍一下李白"},
                                "finish_reason": "stop"}]
    usage = body["usage"]
    assert usage["completion_tokens"] == fake_tokens("echo: 介绍一下李白")
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > usage["completion_tokens"]


def test_stream_sends_role_deltas_finish_usage_and_done(gateway):
    r = gateway.chat(ask("hello world", stream=True, stream_options={"include_usage": True}), stream=True)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = read_events(r)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    # llama-server stamps each chunk with the second it made it, and the gateway passes chunks on as they came:
    # a stream that crosses a second has two (OpenAI's have one)
    created = [c["created"] for c in chunks]
    assert all(type(t) is int for t in created) and created == sorted(created) and created[-1] - created[0] <= 5
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(deltas(chunks)) == "echo: hello world"
    finish = chunks[-2]["choices"][0]
    assert finish["delta"] == {} and finish["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == fake_tokens("echo: hello world")
    assert chunks[-2]["usage"] == chunks[-1]["usage"]  # the finishing chunk carries it too


def test_stream_without_include_usage_has_usage_on_the_finishing_chunk_only(gateway):
    # as CloudBase's vendors stream: @cloudbase/ai never asks for usage and reads it from the chunks
    events = read_events(gateway.chat(ask("hi", stream=True), stream=True))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    with_usage = [c for c in chunks if "usage" in c]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == fake_tokens("echo: hi")
    assert chunks[-1]["usage"]["total_tokens"] == chunks[-1]["usage"]["prompt_tokens"] + fake_tokens("echo: hi")


def test_chinese_is_never_split_inside_a_delta(gateway):
    # The fake emits two-byte tokens, so every 3-byte character arrives split across tokens.
    text = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
    events = read_events(gateway.chat(ask(text, stream=True), stream=True))
    pieces = deltas(events)
    assert "".join(pieces) == "echo: " + text
    assert not any("\ufffd" in p for p in pieces)
    assert len(pieces) > 10  # streamed as it came, not in one piece


@pytest.mark.parametrize("part,named", [
    ({"type": "image_url", "image_url": {"url": "https://img.example/cat.png"}}, "does not read images"),
    ({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}, "does not read audio"),
])
def test_the_text_only_embedded_model_refuses_images_and_audio_saying_why(gateway, part, named):
    content = [{"type": "text", "text": "what is this?"}, part]
    r = gateway.chat(ask(messages=[{"role": "user", "content": content}]))
    assert r.status_code == 400 and r.json()["code"] == "AI_MODEL_PARAM_INVALID"
    assert named in r.json()["message"] and "embedded-gemma" in r.json()["message"]  # the deployment, named


def test_max_tokens_ends_with_length(gateway):
    body = gateway.chat(ask("a long question that has many words", max_tokens=3)).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] == "echo: "
    assert body["usage"]["completion_tokens"] == 3


def test_stop_string_cuts_the_answer(gateway):
    body = gateway.chat(ask("one, two, three", stop=[", t"])).json()
    assert body["choices"][0]["message"]["content"] == "echo: one"
    assert body["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("prefix", ["/v1/ai/cloudbase/v1", "/v1/ai/cloudbase"])
def test_models_listing_in_openai_shape(gateway, prefix):
    r = requests.get(gateway.url + prefix + "/models", headers=gateway.headers())
    assert r.status_code == 200
    assert r.json()["object"] == "list"
    assert [m["id"] for m in r.json()["data"]] == [MODEL]


@pytest.mark.parametrize("suffix", ["/v1", ""])
def test_openai_sdk_works_with_both_base_urls(gateway, suffix):
    import openai

    client = openai.OpenAI(base_url=f"{gateway.url}/v1/ai/cloudbase{suffix}", api_key=gateway.key)
    assert [m.id for m in client.models.list()] == [MODEL]
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "yo"}],
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: yo"
    assert chunks[-1].usage.total_tokens > 0
    unasked = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "yo"}],
                                                  stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in unasked) == "echo: yo"
    assert unasked[-1].choices[0].finish_reason == "stop" and unasked[-1].usage.completion_tokens == \
        chunks[-1].usage.completion_tokens  # the SDK reads usage off the finishing chunk unchanged


def test_openai_sdk_shows_the_cloudbase_message(gateway):
    import openai

    client = openai.OpenAI(base_url=f"{gateway.url}/v1/ai/cloudbase/v1", api_key=gateway.key)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], temperature=3)
    assert "temperature" in str(caught.value)
    assert caught.value.body["code"] == "AI_MODEL_PARAM_INVALID"


def test_client_disconnect_stops_generation_at_once(gateway):
    gateway.engine.script(token_delay=0.05)
    prompt = "word " * 100  # a 300-token echo: 15 s if nobody stopped it
    r = gateway.chat(ask(prompt, stream=True), stream=True)
    lines = r.iter_lines()
    assert next(line for line in lines if line.startswith(b"data: "))
    r.close()  # the client goes away
    wait_until(lambda: gateway.engine.stats()["running"] == 0, "the engine to stop the sequence")
    assert gateway.engine.generated() < 30
    # The engine is free again for the next caller.
    gateway.engine.script(token_delay=0)
    assert gateway.chat(ask("next")).json()["choices"][0]["message"]["content"] == "echo: next"


def test_engine_queue_is_bounded(tmp_path):
    from tests.support.gateway import start_in_thread

    gw = start_in_thread(tmp_path / "data", engine={"parallel": 1}, env={"CBGATE_ENGINE_QUEUE": "0"})
    try:
        gw.engine.script(token_delay=0.05)
        first = threading.Thread(target=gw.chat, args=(ask("word " * 10),))
        first.start()
        gw.wait_admitted(1)  # and handed to the engine: nothing awaits in between
        r = gw.chat(ask("second"))
        assert r.status_code == 429 and r.json()["code"] == "EXCEED_CONCURRENT_REQUEST_LIMIT"
        first.join()
    finally:
        gw.stop()


def test_streaming_accepts_the_seed_headers(gateway):
    r = requests.post(gateway.chat_url(), data=json.dumps(ask("你好", stream=True)).encode(),
                      headers={**gateway.headers(), "Content-Type": "application/json",
                               "Accept": "text/event-stream"}, stream=True)
    assert "".join(deltas(read_events(r))) == "echo: 你好"


def test_openai_js_and_vercel_ai_sdks_read_the_stream_and_its_usage_unchanged(gateway):
    import shutil
    import subprocess
    from pathlib import Path

    js = Path(__file__).resolve().parents[1] / "js"
    assert shutil.which("node") and (js / "node_modules" / "@ai-sdk" / "openai").is_dir(), "run scripts/setup --test"
    out = subprocess.run(["node", str(js / "openai_stream_check.mjs"), f"{gateway.url}/v1/ai/cloudbase/v1",
                          gateway.key, MODEL], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    tokens = fake_tokens("echo: hello there")
    assert seen["openai"]["text"] == "echo: hello there" and seen["openai"]["finish"] == "stop"
    assert seen["openai"]["usage"]["completion_tokens"] == tokens  # off the finishing chunk: nobody asked
    assert seen["vercel"]["text"] == "echo: hello there" and seen["vercel"]["finish"] == "stop", seen
    assert seen["vercel"]["usage"]["outputTokens"] == tokens and seen["vercel"]["usage"]["inputTokens"] > 0
