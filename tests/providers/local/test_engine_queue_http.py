"""The engine's queue through real HTTP, over the fake llama-server with one slot: environments take turns,
a full queue answers 429, and the engine's figures show in /metrics."""
import threading

import pytest
import requests

from tests.support.gateway import start_in_thread
from tests.support.wait import wait_until

MODEL = "gemma-3-270m"


def ask(text: str, **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def operator_headers(gw) -> dict[str, str]:
    _, token = gw.admin.create_operator_token("prometheus")
    headers = {"Authorization": f"Bearer {token}"}
    wait_until(lambda: requests.get(gw.url + "/metrics", headers=headers, timeout=5).status_code == 200,
               what="the operator token")
    return headers


@pytest.fixture
def one_slot(tmp_path):
    gw = start_in_thread(tmp_path / "data", engine={"parallel": 1}, env={"CBGATE_ENGINE_QUEUE": "8"})
    other_env = gw.admin.create_env()
    _, other_key = gw.admin.create_key(other_env)
    headers = operator_headers(gw)
    wait_until(lambda: gw.chat(ask("hi", max_tokens=1), key=other_key).status_code == 200, what="the second key")
    yield gw, other_key, headers
    gw.stop()


def engine_figures(gw, headers) -> dict[str, float]:
    text = requests.get(gw.url + "/metrics", headers=headers, timeout=5).text
    return {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("cbgate_engine_")}


def test_a_second_environment_is_served_between_the_requests_of_a_busy_one(one_slot):
    gw, other_key, headers = one_slot
    gw.engine.script(token_delay=0.02)  # about 0.3 s an answer, one at a time
    finished: list[str] = []

    def client(name: str, key: str | None):
        r = gw.chat(ask("one two three four five six seven eight nine ten eleven"), key=key)
        assert r.status_code == 200, r.text
        finished.append(name)

    busy = [threading.Thread(target=client, args=(f"a{i}", None)) for i in range(4)]
    for thread in busy:
        thread.start()
    wait_until(lambda: engine_figures(gw, headers)["cbgate_engine_queue_depth"] == 3, what="three queued")
    figures = engine_figures(gw, headers)
    assert figures["cbgate_engine_batch_size"] == 1 and figures["cbgate_engine_slots"] == 1
    other = threading.Thread(target=client, args=("b", other_key))
    other.start()
    for thread in busy + [other]:
        thread.join(60)
    # first come, first served would finish b last; taking turns serves it right after the next of a's
    assert finished.index("b") <= 2, finished
    figures = engine_figures(gw, headers)
    assert figures["cbgate_engine_queue_depth"] == 0 and figures["cbgate_engine_batch_size"] == 0
    assert figures["cbgate_engine_generated_tokens_total"] > 0 and figures["cbgate_engine_restarts_total"] == 0


def test_a_full_engine_queue_answers_429_at_once(tmp_path):
    gw = start_in_thread(tmp_path / "data", engine={"parallel": 1}, env={"CBGATE_ENGINE_QUEUE": "1"})
    try:
        headers = operator_headers(gw)
        gw.engine.script(token_delay=0.05)
        first = gw.chat(ask("word " * 30, stream=True), stream=True)
        lines = first.iter_lines()
        next(lines)  # running
        second = threading.Thread(target=gw.chat, args=(ask("queued"),))
        second.start()
        wait_until(lambda: engine_figures(gw, headers)["cbgate_engine_queue_depth"] == 1, what="one in line")
        refused = gw.chat(ask("one too many"))
        assert refused.status_code == 429 and refused.json()["code"] == "EXCEED_CONCURRENT_REQUEST_LIMIT"
        b"".join(lines)
        second.join(30)
    finally:
        gw.stop()
