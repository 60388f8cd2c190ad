"""`cbgate serve` replicas killed with -9 or stopped with SIGTERM, on a PostgreSQL of the test's own:
what a client was served is what the ledger bills, and SIGTERM always exits within its deadline."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from cbgate.store.db import Store
from cbgate.store.usage import recent_requests
from tests.faults.figures import count
from tests.support.catalog import write_catalog
from tests.support.chat import ask
from tests.support.gateway import free_port, make_admin, start_serve
from tests.support.wait import wait_until

MODEL = "fake-gpt"
STORY = "tell me a long story"
WORDS = " ".join(["word"] * 400)  # a piece is about one token, so billed and served compare


@pytest.fixture
def upstream():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.fake_upstream", "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    assert "listening" in proc.stdout.readline()
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def script(upstream: str, *replies: dict) -> None:
    requests.post(upstream + "/_script", json=list(replies), timeout=5).raise_for_status()


def served_tokens(upstream: str) -> int:
    return requests.get(upstream + "/_stats", timeout=5).json()["completion_tokens"]


def replica_env(tmp_path, database_url: str, upstream: str, **extra) -> tuple:
    data_dir = tmp_path / "data"
    write_catalog(data_dir, [{"name": MODEL, "deployments": [{"kind": "openai", "base_url": upstream + "/v1",
                                                              "name": "fake-openai"}]}], include_embedded=False)
    env = {"CBGATE_DATABASE_URL": database_url, **extra}
    admin = make_admin(data_dir, {"CBGATE_DATA_DIR": str(data_dir), **env})
    env_id = admin.create_env("faults")
    _, key = admin.create_key(env_id)
    admin.store.close()
    return data_dir, env, env_id, key


class Reader(threading.Thread):
    """A streaming client that counts the content pieces it received and keeps the last event."""

    def __init__(self, url: str, key: str, surface: str = "chat"):
        super().__init__(daemon=True)
        self.url, self.key, self.surface = url, key, surface
        self.pieces = 0
        self.last = b""
        self.request_id = ""

    def run(self) -> None:
        if self.surface == "messages":  # Anthropic Messages, over the same deployment
            path, piece = "/v1/ai/cloudbase/v1/messages", b'"text":"word'
            body = ask(STORY, MODEL, stream=True, max_tokens=1000)
        else:
            path, body, piece = "/v1/ai/cloudbase/chat/completions", ask(STORY, MODEL, stream=True), b'"content":"word'
        try:
            with requests.post(self.url + path, json=body, stream=True, timeout=60,
                               headers={"Authorization": f"Bearer {self.key}"}) as r:
                self.request_id = r.headers.get("x-request-id", "")
                for line in r.iter_lines():
                    if line.startswith(b"data: "):
                        self.last = line
                        self.pieces += piece in line
        except requests.RequestException:
            pass  # the replica died under it


def ledger(database_url: str, env_id: str, ids: set[str], timeout: float = 20.0) -> list:
    store = Store(database_url)
    try:
        def landed():
            rows = [r for r in recent_requests(store, env_id, 1000) if r.request_id in ids]
            return rows if len(rows) >= len(ids) else None
        try:
            return wait_until(landed, f"{len(ids)} records", timeout)
        except AssertionError:
            return [r for r in recent_requests(store, env_id, 1000) if r.request_id in ids]
    finally:
        store.close()


def test_kill_9_mid_stream_bills_the_tokens_streamed_and_the_prompt_as_counted(tmp_path, own_postgres, upstream):
    data_dir, env, env_id, key = replica_env(tmp_path, own_postgres.db_url, upstream)
    replica = start_serve(data_dir, env)
    try:
        script(upstream, {"usage": False, "content": "a short answer"})  # counted by the gateway, as a crash is
        normal = requests.post(replica.url + "/v1/ai/cloudbase/chat/completions", json=ask(STORY, MODEL),
                               timeout=30, headers={"Authorization": f"Bearer {key}"})
        assert normal.status_code == 200
        script(upstream, *[{"content": WORDS, "chunk_delay": 0.01, "usage": False}] * 4)
        readers = [Reader(replica.url, key) for _ in range(4)]
        for r in readers:
            r.start()
        wait_until(lambda: all(r.pieces >= 60 for r in readers), "the streams to be well under way")
        replica.proc.send_signal(signal.SIGKILL)
        replica.proc.wait(10)
        for r in readers:
            r.join(10)
        served = served_tokens(upstream) - 3  # the upstream's count, less the normal answer's three words
        replica = start_serve(data_dir, env)  # replays what the dead one journalled
        ids = {r.request_id for r in readers}
        rows = ledger(own_postgres.db_url, env_id, ids)
        [first] = ledger(own_postgres.db_url, env_id, {normal.headers["x-request-id"]})
        figures = count("kill -9 mid-stream", ids, rows, served=served)
    finally:
        replica.proc.kill()
        replica.proc.wait(10)
    assert (figures.expected, figures.got, figures.duplicated) == (4, 4, 0)
    assert all(r.code == "GATEWAY_INTERRUPTED" and r.stream for r in rows)
    received = sum(r.pieces for r in readers)
    # journalled every 16 chunks or 250 ms: at most that much under what went out, per stream
    assert received - 4 * 16 <= figures.billed <= served + 4 * 2
    assert all(r.prompt_tokens == first.prompt_tokens for r in rows)  # the prompt as normal operation counts it


@pytest.mark.timing
def test_sigterm_cuts_long_streams_at_the_deadline_with_an_error_event(tmp_path, own_postgres, upstream):
    data_dir, env, env_id, key = replica_env(tmp_path, own_postgres.db_url, upstream, CBGATE_SHUTDOWN_TIMEOUT="4")
    replica = start_serve(data_dir, env)
    try:
        script(upstream, *[{"content": WORDS, "chunk_delay": 0.02}] * 3)  # 8 s each: longer than the deadline
        readers = [Reader(replica.url, key), Reader(replica.url, key), Reader(replica.url, key, "messages")]
        for r in readers:
            r.start()
        wait_until(lambda: all(r.pieces >= 5 for r in readers), "the streams to start")
        began = time.monotonic()
        replica.proc.send_signal(signal.SIGTERM)
        replica.proc.wait(15)
        took = time.monotonic() - began
        for r in readers:
            r.join(10)
        ids = {r.request_id for r in readers}
        rows = ledger(own_postgres.db_url, env_id, ids)
        figures = count("SIGTERM, streams longer than the deadline", ids, rows, served=served_tokens(upstream))
    finally:
        replica.proc.kill()
    assert took <= 4 + 1.5, f"exited {took:.1f}s after SIGTERM, deadline 4s"
    assert all(b"shutting down" in r.last for r in readers)  # told why in the last event, no [DONE]
    assert all(b'"code":"SYS_ERR"' in r.last for r in readers[:2]) and b'"type":"error"' in readers[2].last
    assert (figures.expected, figures.got, figures.duplicated) == (3, 3, 0)
    assert all(r.code == "SYS_ERR" and r.status == 200 and not r.disconnected for r in rows)
    assert sum(r.pieces for r in readers) <= figures.billed <= 1.1 * figures.served + 4


@pytest.mark.timing
def test_a_database_that_stops_answering_loses_nothing_and_sigterm_still_exits_in_time(tmp_path, own_postgres,
                                                                                       upstream):
    data_dir, env, env_id, key = replica_env(tmp_path, own_postgres.db_url, upstream, CBGATE_SHUTDOWN_TIMEOUT="3")
    replica = start_serve(data_dir, env)
    answers = []

    def one() -> requests.Response:
        return requests.post(replica.url + "/v1/ai/cloudbase/chat/completions", json=ask(STORY, MODEL), timeout=30,
                             headers={"Authorization": f"Bearer {key}"})
    try:
        answers += [one() for _ in range(5)]
        own_postgres.freeze()
        try:
            answers += [one() for _ in range(20)]  # served from the snapshot, billed into the spool
            began = time.monotonic()
            replica.proc.send_signal(signal.SIGTERM)
            replica.proc.wait(15)
            took = time.monotonic() - began
        finally:
            own_postgres.thaw()
        replica = start_serve(data_dir, env)  # replays the spool the stopped one left
        ids = {r.headers["x-request-id"] for r in answers}
        rows = ledger(own_postgres.db_url, env_id, ids)
        figures = count("PostgreSQL stops answering, then SIGTERM", ids, rows, served=served_tokens(upstream))
    finally:
        replica.proc.kill()
        replica.proc.wait(10)
    assert all(r.status_code == 200 for r in answers)
    assert took <= 3 + 1.5, f"exited {took:.1f}s after SIGTERM, deadline 3s"
    assert (figures.expected, figures.got, figures.duplicated) == (25, 25, 0)
    assert figures.billed == figures.served
