"""`kill -9` of a `cbgate serve` replica mid-stream: the ledger, on the shared PostgreSQL, ends up with
exactly one record per request the fake upstream served, once the replica is back."""
import signal
import subprocess
import sys
import threading

import requests

from cbgate.pricing import parse_table
from cbgate.store.usage import recent_requests
from tests.support.catalog import write_catalog
from tests.support.gateway import free_port, make_admin, start_serve
from tests.support.wait import wait_until

MODEL = "fake-gpt"
STREAMS = 4
PRICE = {"currency": "CNY", "input": "0.0008", "output": "0.0021"}


def start_fake_upstream_process(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.fake_upstream", "--port", str(port),
                             "--events", "40", "--delay-ms", "50"], stdout=subprocess.PIPE, text=True)
    assert "listening" in proc.stdout.readline()
    return proc


def stats(port: int) -> dict:
    return requests.get(f"http://127.0.0.1:{port}/_stats", timeout=5).json()


def stream_until_cut(url: str, key: str, got: list) -> None:
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "tell me a long story"}]}
    try:
        with requests.post(url + "/v1/ai/cloudbase/chat/completions", json=body, timeout=30, stream=True,
                           headers={"Authorization": f"Bearer {key}"}) as r:
            for line in r.iter_lines():
                if line.startswith(b"data: "):
                    got.append(line)
    except requests.RequestException:
        pass  # the replica died under it


def replica_setup(postgres_url: str, tmp_path, env_id: str):
    """A fake upstream process, a data dir whose catalog points at it, an env and a key on PostgreSQL."""
    upstream_port = free_port()
    upstream = start_fake_upstream_process(upstream_port)
    data_dir = tmp_path / "data"
    write_catalog(data_dir, [{"name": MODEL, "deployments": [{
        "kind": "openai", "base_url": f"http://127.0.0.1:{upstream_port}/v1", "api_key_env": "UPSTREAM_SECRET",
        "name": "fake-openai"}], "price": PRICE}], include_embedded=False)
    env = {"CBGATE_DATABASE_URL": postgres_url, "UPSTREAM_SECRET": "sk-upstream"}
    admin = make_admin(data_dir, {"CBGATE_DATA_DIR": str(data_dir), **env})
    env_id = admin.create_env(env_id)
    _, key = admin.create_key(env_id)
    return upstream_port, upstream, data_dir, env, admin, env_id, key


def test_kill_9_mid_stream_loses_and_duplicates_no_ledger_record(fresh_postgres_url, tmp_path):
    upstream_port, upstream, data_dir, env, admin, env_id, key = replica_setup(fresh_postgres_url, tmp_path,
                                                                               "team-crash")
    replica = start_serve(data_dir, env)
    try:
        for i in range(3):  # finished before the crash, maybe not yet in the database
            ask = {"model": MODEL, "messages": [{"role": "user", "content": f"short {i}"}]}
            assert requests.post(replica.url + "/v1/ai/cloudbase/chat/completions", json=ask, timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}).status_code == 200
        received = [[] for _ in range(STREAMS)]
        clients = [threading.Thread(target=stream_until_cut, args=(replica.url, key, got)) for got in received]
        for c in clients:
            c.start()
        wait_until(lambda: min(map(len, received)) >= 5, "every stream to be under way")
        replica.proc.send_signal(signal.SIGKILL)
        replica.proc.wait(10)
        for c in clients:
            c.join(30)
        assert all(5 <= len(got) < 40 for got in received)  # every stream was cut mid-way

        replica = start_serve(data_dir, env)  # the restarted replica replays what the dead one journalled
        served = stats(upstream_port)
        assert served["chat_requests"] == 3 + STREAMS
        wait_until(lambda: len(recent_requests(admin.store, env_id, 100)) >= served["chat_requests"],
                   "the ledger to hold every served request")
        rows = recent_requests(admin.store, env_id, 100)
        assert len(rows) == len({r.request_id for r in rows}) == served["chat_requests"]
        done = [r for r in rows if r.code is None]
        interrupted = [r for r in rows if r.code == "GATEWAY_INTERRUPTED"]
        assert len(done) == 3 and len(interrupted) == STREAMS
        assert all(r.stream and r.estimated and r.prompt_tokens > 0 for r in interrupted)
        assert sum(r.completion_tokens for r in done) == 3 * 40  # the fake's usage for each finished answer
        price = parse_table(PRICE, "price")  # a crashed stream costs what it streamed, priced as it started
        assert all(r.currency == "CNY" and r.cost_micros == price.cost(r.prompt_tokens, r.completion_tokens) > 0
                   for r in interrupted + done)
        replica.proc.terminate()  # its last flush, and any replay, must not add anything
        replica.proc.wait(30)
        assert len(recent_requests(admin.store, env_id, 100)) == served["chat_requests"]
    finally:
        replica.proc.terminate()
        replica.proc.wait(30)
        upstream.terminate()
        upstream.wait(10)
        admin.store.close()


def test_sigterm_finishes_streams_then_flushes_the_ledger(fresh_postgres_url, tmp_path):
    upstream_port, upstream, data_dir, env, admin, env_id, key = replica_setup(fresh_postgres_url, tmp_path,
                                                                               "team-term")
    replica = start_serve(data_dir, env)
    try:
        received = [[] for _ in range(2)]
        clients = [threading.Thread(target=stream_until_cut, args=(replica.url, key, got)) for got in received]
        for c in clients:
            c.start()
        wait_until(lambda: min(map(len, received)) >= 3, "both streams to be under way")
        replica.proc.send_signal(signal.SIGTERM)
        for c in clients:
            c.join(30)
        assert replica.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it is done
        assert "Application shutdown complete" in replica.log()
        pieces = [sum(b'"content":"t' in line for line in got) for got in received]
        assert all(got[-1] == b"data: [DONE]" for got in received) and pieces == [40, 40]  # finished, not cut
        rows = recent_requests(admin.store, env_id, 100)  # written before the process exited
        assert len(rows) == 2 and all(r.code is None and r.completion_tokens == 40 for r in rows)
        assert not list((data_dir / "spool").glob("*.jsonl"))
    finally:
        replica.proc.kill()
        upstream.terminate()
        upstream.wait(10)
        admin.store.close()
