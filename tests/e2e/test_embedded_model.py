"""The README's promise on the real embedded model: `cbgate serve` on an empty data directory, then the
seed's examples, the OpenAI SDK and the official @cloudbase/ai SDK. Answers are short (max_tokens)."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.gateway import start_serve
from tests.support.sse import deltas, read_events
from tests.support.wait import wait_until

MODEL = "smollm2-135m-instruct"
JS_DIR = Path(__file__).resolve().parents[1] / "js"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("real") / "data"
    server = start_serve(data_dir)
    server.data_dir = data_dir
    yield server
    server.proc.terminate()
    server.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def key(served):
    found = re.findall(r"cbsk_[A-Za-z0-9_-]{43}", served.log())
    assert found, served.log()
    return found[0]


def post(served, key, body, **kwargs):
    return requests.post(f"{served.url}/v1/ai/cloudbase/chat/completions", json=body, timeout=120,
                         headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, **kwargs)


def test_first_start_prints_env_key_and_a_curl_line(served, key):
    log = served.log()
    assert re.search(r"created environment env-[a-z0-9]+", log)
    assert log.count(key) == 2  # the key itself, and inside the ready-to-paste curl line
    assert f"curl {served.url}/v1/ai/cloudbase/chat/completions" in log
    assert "loading" in log and "embedded engine ready" in log  # progress on the long steps
    # announced only once the engine evaluated a token, and before the server took requests
    assert log.index("evaluated") < log.index("Application startup complete")


def test_seed_non_streaming_example(served, key):
    body = post(served, key, {"model": MODEL, "messages": [{"role": "user", "content": "介绍一下李白"}],
                              "stream": False, "max_tokens": 12}).json()
    assert body["object"] == "chat.completion" and body["model"] == MODEL
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert 0 < usage["completion_tokens"] <= 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_the_first_start_curl_gets_an_answer(served, key):
    sent = json.loads(re.search(r"-d '(\{.*\})'", served.log()).group(1))
    assert sent["model"] == MODEL
    r = post(served, key, sent, stream=True)
    text = "".join(deltas(read_events(r)))
    assert re.search(r"[A-Za-z]{2,}.*[A-Za-z]{2,}", text), text  # words, not noise or nothing
    assert text.strip().lower() != sent["messages"][0]["content"].lower()  # not the question echoed


def test_the_default_model_answers_a_simple_question(served, key):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "What is 2+2?"}], "temperature": 0,
            "max_tokens": 32}
    answer = post(served, key, body).json()["choices"][0]["message"]["content"]
    assert "4" in answer, answer


def test_gemma_stays_in_the_catalog_and_counts_prompts_by_its_tokenizer(served, key, engine):
    env_id = re.search(r"created environment (env-[a-z0-9]+)", served.log()).group(1)
    subprocess.run([sys.executable, "-m", "cbgate", "model", "enable", "--env", env_id, "--group", "cloudbase",
                    "gemma-3-270m", "--data-dir", str(served.data_dir)], check=True, capture_output=True, timeout=60)
    text = "数一数这些字"
    prompt = f"<start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n"  # Gemma's turn format
    expected = len(engine.tokenize(prompt))
    request = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": text}], "max_tokens": 2}
    body = wait_until(lambda: (r := post(served, key, request)).ok and r.json(), what="gemma switched on")
    assert body["usage"]["prompt_tokens"] == expected


def test_seed_streaming_example_in_chinese(served, key):
    r = post(served, key, {"model": MODEL, "messages": [{"role": "user", "content": "介绍一下你自己，用中文"}],
                           "stream": True, "max_tokens": 24, "stream_options": {"include_usage": True}},
             stream=True)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = read_events(r)
    assert events[-1] == "[DONE]"
    pieces = deltas(events)
    assert "".join(pieces) and not any("\ufffd" in p for p in pieces)
    assert events[-2]["usage"]["completion_tokens"] <= 24


def test_temperature_zero_is_repeatable_and_max_tokens_gives_length(served, key):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Count: one, two,"}], "temperature": 0,
            "max_tokens": 6}
    first, second = post(served, key, body).json(), post(served, key, body).json()
    assert first["choices"][0]["message"] == second["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "length" and first["usage"]["completion_tokens"] == 6


def test_stop_sequences_are_honoured(served, key):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Write the word hello five times."}],
            "temperature": 0, "max_tokens": 20}
    free = post(served, key, body).json()["choices"][0]["message"]["content"]
    cut_at = free[2:6]
    stopped = post(served, key, {**body, "stop": [cut_at]}).json()["choices"][0]
    assert stopped["finish_reason"] == "stop" and stopped["message"]["content"] == free[:free.index(cut_at)]


@pytest.mark.parametrize("suffix", ["/v1", ""])
def test_openai_sdk(served, key, suffix):
    import openai

    client = openai.OpenAI(base_url=f"{served.url}/v1/ai/cloudbase{suffix}", api_key=key)
    assert MODEL in [m.id for m in client.models.list()]
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
    assert answer.choices[0].message.content and answer.usage.completion_tokens <= 5
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=5, stream=True) if c.choices)
    assert text


def test_official_cloudbase_js_sdk(served, key):
    node = shutil.which("node")
    assert node and (JS_DIR / "node_modules" / "@cloudbase" / "ai").is_dir(), "run scripts/setup first"
    out = subprocess.run([node, str(JS_DIR / "cloudbase_sdk_check.mjs"), served.url, key, MODEL],
                         capture_output=True, text=True, timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["generateText"]["text"] and result["generateText"]["usage"]["completion_tokens"] > 0
    assert result["streamText"]["text"]
    refused = subprocess.run([node, str(JS_DIR / "cloudbase_sdk_check.mjs"), served.url, "cbsk_wrong", MODEL],
                             capture_output=True, text=True, timeout=120)
    errors = json.loads(refused.stdout.strip().splitlines()[-1])
    assert "INVALID_ACCESS_TOKEN" in errors["generateTextError"] and "INVALID_ACCESS_TOKEN" in errors["streamTextError"]


def test_offline_hub_download_fails_with_a_clear_message(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "cbgate.toml").write_text(
        '[[models]]\nname = "tiny"\ndefault = true\n'
        '[[models.deployments]]\nkind = "local"\nsource = "hf:nobody/tiny-gguf/tiny.Q4_K_M.gguf"\n')
    import os
    import sys

    env = {**os.environ, "CBGATE_DATA_DIR": str(data), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "2",
           "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
    out = subprocess.run([sys.executable, "-m", "cbgate", "serve", "--port", "0"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1
    assert "could not download nobody/tiny-gguf/tiny.Q4_K_M.gguf" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
