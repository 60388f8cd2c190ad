"""The topology deploy/ describes, run for real as processes: three `cbgate serve` replicas on PostgreSQL and
Redis behind Debian's nginx running deploy/nginx/nginx.conf, over a fake OpenAI-compatible upstream.

- limits hold exactly through the load balancer (the replicas share them in Redis);
- a replica killed with SIGKILL fails only the requests it had in flight: nginx sends the rest elsewhere;
- a rolling restart (SIGTERM one replica, start it again, wait until it is ready, next) fails no request.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.deploy.topology import NGINX, Nginx, Replica, replica_env
from tests.support.catalog import write_catalog
from tests.support.gateway import free_port, make_admin
from tests.support.postgres import create_database, drop_database
from tests.support.redis_server import delete_prefix, require_redis, unique_prefix
from tests.support.wait import wait_until

MODEL = "fake-gpt"
EVENTS, DELAY_MS = 10, 50  # each streamed answer takes about half a second


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    if not os.path.exists(NGINX):
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is missing (scripts/setup --test installs it)")
        pytest.skip("nginx is missing (apt-get install nginx, or scripts/setup --test)")
    redis_url, database, prefix = require_redis(), create_database(), unique_prefix()
    work = tmp_path_factory.mktemp("topology")
    port = free_port()
    upstream = subprocess.Popen([sys.executable, "-m", "tests.support.fake_upstream", "--port", str(port),
                                 "--events", str(EVENTS), "--delay-ms", str(DELAY_MS)], stdout=subprocess.PIPE,
                                text=True)
    assert "listening" in upstream.stdout.readline()
    data_dir = work / "data"
    write_catalog(data_dir, [{"name": MODEL, "deployments": [{
        "kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "api_key_env": "UPSTREAM_SECRET",
        "name": "fake-openai"}]}], include_embedded=False)
    env = {"CBGATE_DATABASE_URL": database, "CBGATE_REDIS_URL": redis_url, "CBGATE_REDIS_PREFIX": prefix,
           "UPSTREAM_SECRET": "sk-upstream", "CBGATE_SECRET_KEY": "one-key-for-every-replica"}
    admin = make_admin(data_dir, {"CBGATE_DATA_DIR": str(data_dir), **env})
    replicas = [Replica(free_port(), work / f"replica-{i}.log", replica_env(env, data_dir)) for i in range(3)]
    nginx = Nginx(work, replicas)
    try:
        for r in replicas:
            r.start()
        for r in replicas:
            r.wait_ready()
        nginx.start()
        yield admin, nginx, replicas
    finally:
        nginx.stop()
        for r in replicas:
            if r.proc and r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait(10)
        upstream.terminate()
        upstream.wait(10)
        admin.store.close()
        drop_database(database)
        delete_prefix(prefix)


def chat(url: str, key: str, stream: bool) -> str:
    """One chat through `url`: "ok" when the client got a whole answer, else what it got instead."""
    body = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "hello"}]}
    try:
        with requests.post(url + "/v1/ai/cloudbase/chat/completions", json=body, stream=stream, timeout=30,
                           headers={"Authorization": f"Bearer {key}"}) as r:
            if r.status_code != 200:
                try:
                    return f"{r.status_code} {r.json()['code']}"
                except ValueError:
                    return f"{r.status_code} {r.text[:80]!r}"
            if not stream:
                return "ok" if r.json()["choices"][0]["message"]["content"] else "empty answer"
            lines = list(r.iter_lines())
            return "ok" if b"data: [DONE]" in lines else f"cut stream: {lines[-1:]!r}"
    except (requests.RequestException, ValueError) as exc:
        return f"{type(exc).__name__}"


class ClientLoop:
    """`clients` threads chatting through nginx until stopped (or `limit` requests each): every request is
    recorded as (started, ended, ok)."""

    def __init__(self, url: str, key: str, clients: int = 4, limit: int = 400):
        self.url, self.key, self.limit = url, key, limit
        self.results: list[tuple[float, float, str]] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(clients)]

    def run(self, i: int) -> None:
        for n in range(self.limit):
            if self.stopping.is_set():
                return
            started = time.monotonic()
            outcome = chat(self.url, self.key, stream=(n + i) % 2 == 0)
            with self.lock:
                self.results.append((started, time.monotonic(), outcome))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(60)

    def count(self) -> int:
        with self.lock:
            return len(self.results)

    def wait_for(self, more: int) -> None:
        target = self.count() + more
        wait_until(lambda: self.count() >= target, f"{more} more requests through nginx", 60)


def new_env_key(admin, replicas, name: str, **limits) -> str:
    """A fresh env and server key, with no limit but those given, once every replica knows the key."""
    env_id = admin.create_env(name)
    admin.set_env_limits(env_id, {"concurrency": None, "rpm": None, "tpm": None, "token_quota": None, **limits})
    key = admin.create_key(env_id)[1]
    for r in replicas:
        wait_until(lambda: r.knows(key), f"replica {r.port} to know the new key")
    return key


def test_limits_hold_exactly_through_nginx(topology):
    admin, nginx, replicas = topology
    key = new_env_key(admin, replicas, "team-limited", rpm=12)
    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(lambda i: chat(nginx.url, key, stream=i % 2 == 0), range(30)))
    assert outcomes.count("ok") == 12, outcomes
    assert set(outcomes) == {"ok", "429 EXCEED_RATELIMIT"}, outcomes
    refused = requests.post(nginx.url + "/v1/ai/cloudbase/chat/completions", timeout=30,
                            json={"model": MODEL, "messages": [{"role": "user", "content": "one more"}]},
                            headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 429 and refused.json()["code"], refused.text


def test_a_killed_replica_fails_only_its_own_requests(topology):
    admin, nginx, replicas = topology
    key = new_env_key(admin, replicas, "team-kill")
    victim = replicas[1]
    try:
        with ClientLoop(nginx.url, key, clients=6) as loop:
            loop.wait_for(12)
            victim.stop(signal.SIGKILL)
            dead_at = time.monotonic()  # reaped: its sockets are closed, nothing more can reach it
            loop.wait_for(60)
    finally:
        victim.start()  # for the next test, whatever happened here
        victim.wait_ready()
    failed = [(started - dead_at, outcome) for started, _, outcome in loop.results if outcome != "ok"]
    # Only requests that the victim had taken when it died may fail: each started before it was gone (a
    # dying process's socket still completes connections until the kernel closes it), and no more than the
    # clients running at once. Every request after that went to the other two.
    assert all(started < 0 for started, _ in failed), failed
    assert len(failed) <= 6, failed
    assert sum(outcome == "ok" for started, _, outcome in loop.results if started > dead_at) >= 60


def test_a_rolling_restart_fails_no_request(topology):
    admin, nginx, replicas = topology
    key = new_env_key(admin, replicas, "team-rolling")
    with ClientLoop(nginx.url, key, clients=4) as loop:
        loop.wait_for(8)
        for replica in replicas:
            # As the README says for plain nginx: take the replica out of the balancer first. Without it, a
            # connection nginx opens in the instant the replica stops listening fails its POST with 502 (seen
            # under a CPU hog: 4 of 130).
            nginx.reload(down=frozenset({replica.port}))
            # Drains its requests, then exits (uvicorn re-raises the SIGTERM it handled once it is done).
            assert replica.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
            loop.wait_for(8)  # two replicas carry the traffic meanwhile
            replica.start()
            replica.wait_ready()
            nginx.reload()
            loop.wait_for(8)
    failed = [outcome for _, _, outcome in loop.results if outcome != "ok"]
    assert not failed, f"{len(failed)} of {len(loop.results)} requests failed during the rolling restart: {failed}"
    assert len(loop.results) >= 8 * 7
