"""Agents the gateway fronts: an AG-UI server built with `ag-ui-protocol` on loopback (a process), its
events passed through byte for byte, every other route under the agent forwarded, the caller's identity
passed (never its key), and stalls, break-offs and a kill -9 ending the run with RUN_ERROR and exactly one
ledger record."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import orjson
import pytest
import requests

from cbgate.core.agent_admin import AgentSpec
from tests.agents.conftest import ag_ui, types_of
from tests.support.gateway import free_port
from tests.support.ledger import wait_for_records
from tests.support.sse import read_events
from tests.support.wait import wait_until


class AgentServer:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.agui_server", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.up, "the AG-UI test server to answer")

    def up(self) -> bool:
        try:
            return requests.get(self.url + "/_last", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def last(self) -> dict:
        return requests.get(self.url + "/_last", timeout=5).json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def server():
    s = AgentServer()
    yield s
    s.stop()


@pytest.fixture
def fronted(agents, server):
    agent = agents.gw.admin.agents.create(agents.gw.env_id, AgentSpec(name=f"front-{server.port}", url=server.url))
    return agent.id


def raw_events(resp) -> bytes:
    return b"".join(resp.iter_content(chunk_size=None))


def test_events_pass_through_byte_for_byte(agents, server, fronted):
    resp = agents.send(fronted, ag_ui("hello", thread="t-front"))
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    body = raw_events(resp)
    expected = b"".join(f'data: {line}\n\n'.encode() for line in (
        '{"type":"RUN_STARTED","threadId":"t-front","runId":"run-1"}',
        '{"type":"TEXT_MESSAGE_START","messageId":"m1","role":"assistant"}',
        '{"type":"TEXT_MESSAGE_CONTENT","messageId":"m1","delta":"fronted "}',
        '{"type":"TEXT_MESSAGE_CONTENT","messageId":"m1","delta":"says: "}',
        '{"type":"TEXT_MESSAGE_CONTENT","messageId":"m1","delta":"hello"}',
        '{"type":"TEXT_MESSAGE_END","messageId":"m1"}',
        '{"type":"RUN_FINISHED","threadId":"t-front","runId":"run-1"}'))
    assert body == expected
    got = server.last()
    assert got["body"]["messages"][0]["content"] == "hello"  # the client's body, as it sent it
    identity = orjson.loads(got["headers"]["x-cloudbase-credentials"])
    assert identity["env"] == agents.gw.env_id and identity["keyKind"] == "server"
    assert agents.gw.key not in str(got["headers"])  # the caller's key never leaves the gateway
    rid = resp.headers["x-request-id"]
    record = wait_for_records(agents.gw.admin.store, agents.gw.env_id, 1, lambda r: r.request_id == rid)[0]
    assert (record.surface, record.agent_id, record.code) == ("agent", fronted, None)


def test_every_other_route_under_the_agent_is_forwarded(agents, server, fronted):
    stt = agents.call("POST", f"/bots/{fronted}/speech-to-text", json={"voiceFormat": "mp3", "url": "u",
                                                                      "engSerViceType": "16k_zh"})
    assert stt.status_code == 200 and stt.json()["served"] == "/speech-to-text"
    assert orjson.loads(stt.json()["got"])["voiceFormat"] == "mp3"
    records = agents.call("GET", f"/bots/{fronted}/records?pageSize=5")
    assert records.json()["served"] == "/records" and server.last()["query"] == "pageSize=5"
    assert "authorization" not in server.last()["headers"]
    assert agents.call("GET", f"/bots/{agents.local_agent}/speech-to-text").status_code == 404


def test_a_stall_ends_the_run_with_run_error(agents, server):
    front = agents.gw.app.agent_front  # a short idle timeout: a stalled server must not hang the run

    idle, front.timeouts = front.timeouts, type(front.timeouts)(idle=1.0)
    try:
        agent = agents.gw.admin.agents.create(agents.gw.env_id, AgentSpec(name=f"stall-{server.port}",
                                                                          url=server.url))
        events = read_events(agents.send(agent.id, ag_ui("stall")))
    finally:
        front.timeouts = idle
    assert types_of(events) == ["RUN_STARTED", "RUN_ERROR"]
    assert events[-1]["code"] == "AGENT_SERVER_ERR" and "sent nothing" in events[-1]["message"]


def test_a_server_that_breaks_off_ends_the_run_with_run_error(agents, server, fronted):
    events = read_events(agents.send(fronted, ag_ui("half")))
    assert types_of(events)[-1] == "RUN_ERROR" and events[-1]["code"] == "AGENT_SERVER_ERR"


def test_kill_9_mid_run_is_run_error_and_exactly_one_ledger_record(agents, server, fronted):
    resp = agents.send(fronted, ag_ui("slow"))
    lines = resp.iter_lines()
    seen = []
    for line in lines:
        if line.startswith(b"data: "):
            seen.append(orjson.loads(line[6:]))
        if len(seen) >= 4:
            break
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=30)
    for line in lines:
        if line.startswith(b"data: "):
            seen.append(orjson.loads(line[6:]))
    assert types_of(seen)[0] == "RUN_STARTED" and types_of(seen)[-1] == "RUN_ERROR"
    assert "RUN_FINISHED" not in types_of(seen) and seen[-1]["code"] == "AGENT_SERVER_ERR"
    rid = resp.headers["x-request-id"]
    rows = wait_for_records(agents.gw.admin.store, agents.gw.env_id, 1, lambda r: r.request_id == rid)
    assert len(rows) == 1 and rows[0].code == "AGENT_SERVER_ERR" and rows[0].agent_id == fronted


def test_an_unreachable_or_refused_server_is_a_json_agent_server_error(agents):
    port = free_port()  # nothing listens there
    agent = agents.gw.admin.agents.create(agents.gw.env_id, AgentSpec(name=f"down-{port}",
                                                                      url=f"http://127.0.0.1:{port}"))
    resp = agents.send(agent.id, ag_ui("hi"))
    assert resp.status_code == 502 and resp.json()["code"] == "AGENT_SERVER_ERR"
    assert resp.json()["requestId"] == resp.headers["x-request-id"]
