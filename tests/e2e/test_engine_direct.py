"""What llama-server does its own way, checked on the real model without the gateway: it stops a
sequence when its client leaves, and a turn that extends a conversation reuses the cached prefix."""
import json
import time

import requests

MODEL = "gemma-3-270m"


def test_the_engine_stops_a_sequence_as_soon_as_its_connection_closes(engine):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Write a very long essay about rivers."}],
            "max_tokens": 2000, "temperature": 0, "stream": True}
    r = engine.chat(body, stream=True)
    events = 0
    for line in r.iter_lines():
        if line.startswith(b"data: "):
            events += 1
            if events == 5:
                break
    r.close()
    deadline = time.monotonic() + 10  # the 2,000 tokens would take a minute or more
    while any(slot["is_processing"] for slot in engine.slots()):
        assert time.monotonic() < deadline, "llama-server kept generating for a client that left"
        time.sleep(0.05)


def turn(engine, messages: list[dict]) -> tuple[str, dict]:
    body = {"model": MODEL, "messages": messages, "max_tokens": 12, "temperature": 0, "stream": True,
            "timings_per_token": True}
    text, timings = "", {}
    with engine.chat(body, stream=True) as r:
        for line in r.iter_lines():
            if line.startswith(b"data: {"):
                event = json.loads(line[6:])
                timings = event.get("timings") or timings
                for choice in event.get("choices") or ():
                    text += choice["delta"].get("content") or ""
    return text, timings


def test_a_turn_that_extends_a_conversation_reuses_the_cached_prefix(engine):
    messages = [{"role": "user", "content": "Tell me about the moon. " * 20}]
    for _ in range(3):
        reply, timings = turn(engine, messages)
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "And then?"}]
    reply, timings = turn(engine, messages)
    history = timings["cache_n"] + timings["prompt_n"]
    # only the new part (the last reply as the template writes it, and the new question) was evaluated
    assert history > 150 and timings["prompt_n"] < 40 and timings["cache_n"] > 0.75 * history, timings
    assert requests.get(engine.url + "/health", timeout=5).ok


def test_a_seed_makes_sampling_repeatable_per_sequence(engine):
    def sample(seed: int) -> str:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Name a fruit."}], "max_tokens": 12,
                "temperature": 1.0, "top_p": 1.0, "seed": seed}
        return engine.chat(body).json()["choices"][0]["message"]["content"]

    first = sample(1234)
    assert sample(1234) == first
    assert any(sample(seed) != first for seed in (1, 2, 3))  # other seeds sample other tokens
