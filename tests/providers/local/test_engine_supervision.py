"""The engine's process dies under load (killed, segfault): the requests it was serving get their error and
are billed, the gateway keeps serving, and the engine is back, over the fake llama-server. The same on the
real model is in tests/e2e/test_engine_isolation.py."""
import json
import os
import signal
import threading

import requests

from cbgate.providers.local.supervisor import Backoff
from tests.http.test_metrics import scrape
from tests.support.ledger import wait_for_records
from tests.support.wait import wait_until

MODEL = "gemma-3-270m"


def ask(text: str, **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def engine_back(gateway, old_pid: int) -> bool:
    try:
        return gateway.engine.pid() != old_pid
    except (requests.ConnectionError, OSError):
        return False


def test_a_stream_cut_by_the_engine_dying_ends_with_an_error_event_is_billed_and_the_engine_returns(gateway):
    gateway.engine.script(token_delay=0.05)
    pid = gateway.engine.pid()
    r = gateway.chat(ask("word " * 80, stream=True, stream_options={"include_usage": True}), stream=True)
    lines = r.iter_lines()
    received = []
    for line in lines:
        if line.startswith(b"data: "):
            received.append(json.loads(line[6:]))
            if len(received) == 6:
                break
    os.kill(pid, signal.SIGKILL)
    rest = [line[6:] for line in lines if line.startswith(b"data: ")]
    assert rest and b"[DONE]" not in rest
    error = json.loads(rest[-1])
    assert error["code"] == "AI_MODEL_REQUEST_FAILED" and "SIGKILL" in error["message"]
    content_events = len(received) - 1 + len(rest) - 1  # less the role chunk and the error event

    [record] = wait_for_records(gateway.admin.store, gateway.env_id, 1)
    assert record.code == "AI_MODEL_REQUEST_FAILED" and record.stream and not record.estimated
    assert content_events <= record.completion_tokens < 80 and record.prompt_tokens > 0

    assert requests.get(gateway.url + "/healthz", timeout=5).status_code == 200  # the gateway is unharmed
    wait_until(lambda: engine_back(gateway, pid), what="the engine's restart")
    gateway.engine.script(token_delay=None)
    assert gateway.chat(ask("again")).json()["choices"][0]["message"]["content"] == "echo: again"
    metrics = scrape(gateway)
    assert metrics['cbgate_engine_restarts_total{engine="embedded-gemma"}'] == 1
    assert metrics['cbgate_engine_up{engine="embedded-gemma"}'] == 1


def test_a_non_streaming_request_in_flight_gets_502_when_the_engine_segfaults(gateway):
    gateway.engine.script(token_delay=0.05, crash_after_tokens=12)  # the warm-up token counts too
    answer = gateway.chat(ask("word " * 40))
    assert answer.status_code == 502
    body = answer.json()
    assert body["code"] == "AI_MODEL_REQUEST_FAILED" and "SIGSEGV" in body["message"]
    [record] = wait_for_records(gateway.admin.store, gateway.env_id, 1)
    assert record.code == "AI_MODEL_REQUEST_FAILED" and not record.stream and record.completion_tokens >= 10
    gateway.engine.script(crash_after_tokens=None, token_delay=None)
    assert wait_until(lambda: gateway.chat(ask("back?")).status_code == 200, what="the engine's restart")


def test_requests_wait_for_a_restarting_engine_instead_of_failing(gateway):
    pid = gateway.engine.pid()
    os.kill(pid, signal.SIGKILL)
    answers = []
    clients = [threading.Thread(target=lambda: answers.append(gateway.chat(ask("patience")).status_code))
               for _ in range(3)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(60)
    assert answers == [200, 200, 200]


def test_an_engine_start_that_fails_in_an_unexpected_way_is_tried_again(gateway):
    gateway.engine.script(usage_override={"prompt_tokens": "many"})  # the warm-up's count cannot be read
    os.kill(gateway.engine.pid(), signal.SIGKILL)
    wait_until(lambda: "ValueError" in requests.get(gateway.url + "/readyz", timeout=10).text,
               what="a restart that failed on the unreadable count")
    gateway.engine.script(usage_override=None)
    assert wait_until(lambda: gateway.chat(ask("back?")).status_code == 200, what="the engine's next restart")


def test_the_engine_key_is_in_its_environment_not_on_its_command_line(gateway):
    pid = gateway.engine.pid()
    command_line = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    environment = dict(entry.split(b"=", 1) for entry in open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
                       if b"=" in entry)
    assert b"--api-key" not in command_line and environment[b"LLAMA_API_KEY"] not in command_line
    assert not any(name.startswith(b"CBGATE_TEST_") for name in environment)  # the gateway's own stay with it
    assert gateway.chat(ask("hello")).status_code == 200  # and the engine, keyed, still serves the gateway


def test_crashes_back_off_and_a_stable_run_resets_the_backoff():
    backoff = Backoff(first=0.25, cap=4.0, stable_after=60.0)
    assert [backoff.next_delay(ran_for=1.0) for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff.next_delay(ran_for=120.0) == 0.25
