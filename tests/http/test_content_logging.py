"""Message contents reach the ledger only when the operator turns content logging on."""
import json

import pytest
import requests

from tests.support.chat import ask
from tests.support.gateway import start_in_thread
from tests.support.ledger import wait_for_records
from tests.support.sse import read_events

@pytest.fixture
def logging_gateway(tmp_path):
    gw = start_in_thread(tmp_path / "data", env={"CBGATE_LOG_CONTENT": "true"})
    yield gw
    gw.stop()


def test_with_content_logging_on_the_ledger_keeps_messages_and_answers(logging_gateway):
    gw = logging_gateway
    assert gw.chat(ask("床前明月光")).status_code == 200
    read_events(gw.chat(ask("streamed words", stream=True), stream=True))
    records = wait_for_records(gw.admin.store, gw.env_id, 2)
    by_question = {json.loads(r.content)["messages"][0]["content"]: json.loads(r.content) for r in records}
    assert by_question["床前明月光"]["answer"] == "echo: 床前明月光"
    assert by_question["streamed words"]["answer"] == "echo: streamed words"
    # The operator reads them through the admin API's recent requests.
    _, token = gw.admin.create_operator_token("ops")
    gw.wait_for_snapshot()
    recent = requests.get(f"{gw.url}/admin/v1/envs/{gw.env_id}/requests", headers={"Authorization": f"Bearer {token}"},
                          timeout=10)
    assert recent.status_code == 200 and "床前明月光" in recent.text


def test_by_default_no_content_is_kept(gateway):
    assert gateway.chat(ask("a private question")).status_code == 200
    [record] = wait_for_records(gateway.admin.store, gateway.env_id, 1)
    assert record.content is None
    stored = b"".join(p.read_bytes() for p in gateway.data_dir.rglob("*") if p.is_file())
    assert b"a private question" not in stored
