"""The engine's own behaviour on the real model (Gemma 3 270M in llama-server), through `cbgate serve` as a
user runs it: batching mixes no sequences, a client that leaves stops only its own sequence, and a killed
engine costs only the requests it was serving. Answers are short (max_tokens) to keep this quick."""
import json
import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.gateway import make_admin, start_serve
from tests.support.ledger import wait_for_records

MODEL = "smollm2-135m-instruct"  # the default catalog's embedded default
# Prompts whose greedy continuations are clear. Where a base model's next token is a near tie (the junk it
# writes after some prompts), llama.cpp's kernels for a batch of 1 and of 4 round differently enough to pick
# another token: that is arithmetic, not mixing, so these tests use prompts with a clear answer.
PROMPTS = ["Count: one, two, three,", "Monday, Tuesday, Wednesday,", "The capital of France is", "def fibonacci(n):"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("engine-real") / "data"
    server = start_serve(data_dir)
    server.data_dir = data_dir
    yield server
    server.proc.terminate()
    server.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def key(served):
    return re.findall(r"cbsk_[A-Za-z0-9_-]{43}", served.log())[0]


def post(served, key, body, **kwargs) -> requests.Response:
    return requests.post(f"{served.url}/v1/ai/cloudbase/chat/completions", json=body, timeout=120,
                         headers={"Authorization": f"Bearer {key}"}, **kwargs)


def greedy(prompt: str, max_tokens: int = 16, **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
            "max_tokens": max_tokens, **extra}


def answer(served, key, prompt: str, max_tokens: int = 16) -> tuple[str, int]:
    r = post(served, key, greedy(prompt, max_tokens))
    assert r.status_code == 200, r.text
    body = r.json()
    return body["choices"][0]["message"]["content"], body["usage"]["completion_tokens"]


def wait_until(check, timeout: float = 60.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_four_concurrent_prompts_give_the_tokens_each_gives_alone(served, key):
    alone = [answer(served, key, p) for p in PROMPTS]
    start = threading.Barrier(len(PROMPTS))

    def together(prompt):
        start.wait()
        return answer(served, key, prompt)

    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        batched = list(pool.map(together, PROMPTS))
    assert batched == alone
    assert all(tokens == 16 or text for text, tokens in alone)


def read_stream(response: requests.Response, stop_after: int | None = None) -> tuple[str, list]:
    events, text = [], ""
    for line in response.iter_lines():
        if not line.startswith(b"data: "):
            continue
        payload = line[6:]
        event = "[DONE]" if payload == b"[DONE]" else json.loads(payload)
        events.append(event)
        if isinstance(event, dict) and event.get("choices"):
            text += event["choices"][0]["delta"].get("content") or ""
        if stop_after is not None and len(events) >= stop_after:
            response.close()  # the client leaves
            break
    return text, events


def test_cancelling_one_of_four_streams_leaves_the_other_three_whole(served, key):
    alone = [answer(served, key, p)[0] for p in PROMPTS]
    start = threading.Barrier(len(PROMPTS))

    def stream(i: int):
        start.wait()
        r = post(served, key, greedy(PROMPTS[i], 16, stream=True), stream=True)
        return read_stream(r, stop_after=3 if i == 0 else None)

    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        results = list(pool.map(stream, range(len(PROMPTS))))
    assert len(results[0][1]) == 3
    for i in (1, 2, 3):
        text, events = results[i]
        assert events[-1] == "[DONE]" and text == alone[i]


def engine_pid(served) -> int:
    # the default catalog starts two engines (Gemma too): this one serves MODEL
    return int(re.findall(r"embedded-smollm2 \(llama-server pid (\d+)", served.log())[-1])


def test_killing_the_engine_mid_stream_ends_that_stream_bills_it_and_the_engine_comes_back(served, key):
    pid = engine_pid(served)
    r = post(served, key, greedy("Tell me a long story about a dragon and a knight.", 200, stream=True), stream=True)
    request_id = r.headers["x-request-id"]
    received = 0
    lines = r.iter_lines()
    for line in lines:
        if line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
            received += 1
            if received == 5:
                break
    os.kill(pid, signal.SIGKILL)
    rest = [line[6:] for line in lines if line.startswith(b"data: ")]
    assert rest and b"[DONE]" not in rest
    error = json.loads(rest[-1])
    assert error["code"] == "AI_MODEL_REQUEST_FAILED" and "SIGKILL" in error["message"]

    admin = make_admin(served.data_dir)
    try:
        env_id = admin.list_envs()[0][0]
        records = wait_for_records(admin.store, env_id, 1, where=lambda rec: rec.request_id == request_id)
        assert records and records[0].code == "AI_MODEL_REQUEST_FAILED" and not records[0].estimated
        assert 5 <= records[0].completion_tokens < 200
        wait_until(lambda: engine_pid(served) != pid, what="the engine's restart")
        assert answer(served, key, PROMPTS[0])[0]
        _, token = admin.create_operator_token("e2e")
        headers = {"Authorization": f"Bearer {token}"}
        metrics = wait_until(lambda: (m := requests.get(served.url + "/metrics", headers=headers, timeout=10)).ok
                             and m.text, what="the operator token")
    finally:
        admin.store.close()
    assert 'cbgate_engine_restarts_total{engine="embedded-smollm2"} 1' in metrics
    assert "restarting it in" in served.log() and "is back after restart 1" in served.log()
