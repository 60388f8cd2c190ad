"""The operator's endpoints and messages: /livez, /readyz and its named checks, the access log, and the
"did you mean" hints a client gets for a wrong path, group or model."""
from __future__ import annotations

import json
import logging
import os
import signal

import openai
import pytest
import requests
from sqlalchemy import text

from cbgate.logs import ACCESS, JsonFormatter
from tests.support.gateway import start_in_thread
from tests.support.wait import wait_until

MODEL = "gemma-3-270m"


def test_livez_and_healthz_answer_and_readyz_lists_its_checks(gateway):
    for path in ("/livez", "/healthz"):
        assert requests.get(gateway.url + path, timeout=10).json() == {"status": "ok"}
    ready = requests.get(gateway.url + "/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"store": "ok", "migrations": "ok", "engine": "ok"}}


def test_readyz_is_503_while_a_migration_is_missing(gateway):
    with gateway.admin.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM schema_migrations WHERE name = '0001_core_tables'"))
    ready = requests.get(gateway.url + "/readyz", timeout=10)
    assert ready.status_code == 503 and ready.json()["status"] == "not ready"
    assert "0001_core_tables" in ready.json()["checks"]["migrations"]
    assert requests.get(gateway.url + "/livez", timeout=10).status_code == 200  # alive all the same


def test_readyz_asks_the_engine_for_its_state(gateway):
    gateway.engine.script(crash_on_eval=True)  # killed, and each restart dies again while proving itself
    os.kill(gateway.engine.pid(), signal.SIGKILL)

    def engine_down():
        ready = requests.get(gateway.url + "/readyz", timeout=10)
        return ready.status_code == 503 and ready.json()["checks"]["engine"]

    assert "killed by SIG" in wait_until(engine_down, "/readyz to see the engine down")
    gateway.engine.script(crash_on_eval=None)
    wait_until(lambda: requests.get(gateway.url + "/readyz", timeout=10).status_code == 200, "the engine back")


def test_readyz_checks_redis_where_it_is_configured(tmp_path):
    gw = start_in_thread(tmp_path / "data", env={"CBGATE_REDIS_URL": "redis://127.0.0.1:1/0"})
    try:
        ready = requests.get(gw.url + "/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] != "ok"
    finally:
        gw.stop()


def access_records(caplog, count: int) -> list[logging.LogRecord]:
    """The access lines, once `count` are there: a line is written just after the answer's last byte."""
    wait_until(lambda: len([r for r in caplog.records if r.name == ACCESS]) >= count, f"{count} access lines")
    return [r for r in caplog.records if r.name == ACCESS]


def test_one_access_log_line_per_request_with_its_outcome(gateway, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS)
    answer = gateway.chat({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    refused = gateway.chat({"model": MODEL, "messages": []}, key="cbsk_wrong")
    requests.get(gateway.url + "/livez", timeout=10)
    lines = access_records(caplog, 3)
    assert len(lines) == 3
    chat, bad, live = (r.fields for r in lines)
    usage = answer.json()["usage"]
    assert chat["status"] == 200 and chat["code"] == "OK" and chat["model"] == MODEL
    assert (chat["prompt_tokens"], chat["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert chat["request_id"] == answer.headers["x-request-id"] and chat["latency_ms"] > 0
    assert f"request={chat['request_id']}" in lines[0].getMessage() and f"model={MODEL}" in lines[0].getMessage()
    assert bad["status"] == 401 and bad["code"] == "INVALID_ACCESS_TOKEN" and bad["model"] == ""
    assert bad["request_id"] == refused.headers["x-request-id"]
    assert live["status"] == 200 and live["path"] == "/livez"


def test_a_stream_gets_one_access_line_when_it_ends(gateway, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS)
    with gateway.chat({"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}],
                       "stream_options": {"include_usage": True}}, stream=True) as response:
        body = response.content
    assert b"[DONE]" in body
    (line,) = access_records(caplog, 1)
    assert line.fields["status"] == 200 and line.fields["completion_tokens"] > 0


def test_json_log_lines_carry_the_access_fields():
    record = logging.LogRecord(ACCESS, logging.INFO, __file__, 1, "200 OK", (), None)
    record.fields = {"status": 200, "code": "OK", "model": MODEL, "request_id": "abc"}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["logger"] == ACCESS and entry["status"] == 200 and entry["request_id"] == "abc"
    assert entry["time"].endswith("Z") and entry["level"] == "info"


def test_an_openai_sdk_at_the_wrong_base_url_is_told_the_right_one(gateway):
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert "/v1/ai/cloudbase/v1" in str(caught.value)
    typo = requests.post(gateway.url + "/v1/ai/cloudbase/chat/completion", timeout=10)
    assert typo.status_code == 404 and "did you mean /v1/ai/cloudbase/chat/completions" in typo.json()["message"]


def test_unknown_groups_and_models_get_hints(gateway):
    group = gateway.chat({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, group="deepsek")
    assert group.status_code == 404 and "did you mean 'deepseek'" in group.json()["message"]
    model = gateway.chat({"model": "gemma-3-270", "messages": [{"role": "user", "content": "hi"}]})
    assert model.json()["code"] == "AI_MODEL_NOT_SUPPORTED"
    assert f"did you mean '{MODEL}'" in model.json()["message"] and f"(models: {MODEL})" in model.json()["message"]


def test_the_access_log_can_be_switched_off(monkeypatch):
    from cbgate.logs import setup_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        monkeypatch.setenv("CBGATE_ACCESS_LOG", "off")
        setup_logging("text")
        assert logging.getLogger(ACCESS).disabled
        monkeypatch.setenv("CBGATE_ACCESS_LOG", "on")
        setup_logging("json")
        assert not logging.getLogger(ACCESS).disabled and isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:] = handlers  # pytest's own capture handlers
        root.setLevel(level)
        logging.getLogger(ACCESS).disabled = False
