"""Three `cbgate serve` replicas sharing PostgreSQL and Redis, driven concurrently: together they never
admit more than the environment's concurrency or requests per minute, overspend its token quota by at
most one reservation, and a replica killed with `kill -9` gives its slots back within seconds."""
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from cbgate.limits.base import estimate_cost
from tests.support.gateway import start_serve
from tests.support.replicas import shared_replicas
from tests.support.wait import elapsed_until, wait_until

MODEL = "fake-gpt"
EVENTS, DELAY_MS = 30, 100  # each streamed answer takes ~3 s


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with shared_replicas(tmp_path_factory.mktemp("replicas") / "data", MODEL, EVENTS, DELAY_MS) as shared:
        admin = shared.admin
        env_id = admin.create_env("team-replicas")
        _, key = admin.create_key(env_id)
        _, operator = admin.create_operator_token("tests")  # reads each replica's /metrics
        yield admin, env_id, key, shared.start(3), (shared.data_dir, shared.env, operator)


def chat(url: str, key: str, text: str = "hello", stream: bool = True, max_tokens: int | None = None):
    body = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": text}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    body["stream_options"] = {"include_usage": True} if stream else None
    if not stream:
        del body["stream_options"]
    with requests.post(url + "/v1/ai/cloudbase/chat/completions", json=body, timeout=60, stream=stream,
                       headers={"Authorization": f"Bearer {key}"}) as r:
        if r.status_code != 200:
            return r.status_code, r.json()["code"], 0
        if not stream:
            return 200, None, r.json()["usage"]["total_tokens"]
        usage = [line for line in r.iter_lines() if b'"usage"' in line]
        total = int(usage[-1].split(b'"total_tokens":')[1].split(b"}")[0]) if usage else 0
        return 200, None, total


def wait_for_snapshots(admin, replicas, operator: str) -> None:
    """Until every replica serves what the store holds now."""
    target = admin.store.revision()
    wait_until(lambda: all(r.metric(operator, "cbgate_tenant_snapshot_revision") >= target for r in replicas),
               f"every replica to load store revision {target}")


def set_limits(cluster, env_id: str, **limits) -> None:
    admin, _, _, replicas, (_, _, operator) = cluster
    admin.set_env_limits(env_id, limits)
    wait_for_snapshots(admin, replicas, operator)


def fire(replicas, key: str, count: int, **kw) -> list[tuple[int, str | None, int]]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda i: chat(replicas[i % len(replicas)].url, key, **kw), range(count)))


@pytest.mark.timing
def test_a_key_revoked_on_one_replica_is_refused_by_all_within_seconds(cluster):
    admin, env_id, key, replicas, (_, _, operator) = cluster
    row, doomed = admin.create_key(env_id)

    def accepted_by(replica) -> int:
        return requests.get(replica.url + "/v1/ai/cloudbase/models", timeout=10,
                            headers={"Authorization": f"Bearer {doomed}"}).status_code

    wait_for_snapshots(admin, replicas, operator)
    assert all(accepted_by(r) == 200 for r in replicas)
    revoked = requests.delete(f"{replicas[0].url}/admin/v1/envs/{env_id}/keys/{row.id}", timeout=10,
                              headers={"Authorization": f"Bearer {key}"})
    assert revoked.status_code == 200, revoked.text
    took = elapsed_until(lambda: all(accepted_by(r) == 401 for r in replicas), "every replica to refuse the key")
    assert took < 6, f"replicas took {took:.1f}s (promised 2 s: they poll every 0.5 s)"


def test_replicas_together_admit_no_more_than_the_concurrency(cluster):
    admin, env_id, key, replicas, _ = cluster
    set_limits(cluster, env_id, concurrency=3, rpm=None, tpm=None, token_quota=None)
    results = fire(replicas, key, 12)  # all arrive well within the ~3 s the admitted ones take
    assert sum(status == 200 for status, _, _ in results) == 3  # not 3 per replica
    assert {c for s, c, _ in results if s != 200} == {"EXCEED_CONCURRENT_REQUEST_LIMIT"}


def test_replicas_together_admit_no_more_than_the_requests_per_minute(cluster):
    admin, env_id, key, replicas, _ = cluster
    set_limits(cluster, env_id, concurrency=None, rpm=10, tpm=None, token_quota=None)
    results = fire(replicas, key, 24, stream=False)
    assert sum(status == 200 for status, _, _ in results) == 10
    assert {c for s, c, _ in results if s != 200} == {"EXCEED_RATELIMIT"}


def test_replicas_overspend_the_quota_by_at_most_one_reservation(cluster):
    admin, _, _, replicas, _ = cluster
    env_id = admin.create_env("team-quota")  # a quota counts every token ever used: a fresh env
    _, key = admin.create_key(env_id)
    set_limits(cluster, env_id, concurrency=None, token_quota=400)
    reservation = estimate_cost([{"role": "user", "content": "hello"}], 40)
    results = fire(replicas, key, 24, stream=False, max_tokens=40)
    results += fire(replicas, key, 12, stream=False, max_tokens=40)  # settled by now: the rest of the quota
    used = sum(tokens for status, _, tokens in results if status == 200)
    assert sum(status == 200 for status, _, _ in results) >= 400 // reservation
    assert 400 - reservation < used <= 400 + reservation
    assert {c for s, c, _ in results if s != 200} == {"EXCEED_TOKEN_QUOTA_LIMIT"}


@pytest.mark.timing
def test_a_replica_killed_mid_stream_frees_its_slots_within_seconds(cluster):
    admin, env_id, key, replicas, (data_dir, env, operator) = cluster
    set_limits(cluster, env_id, concurrency=2, rpm=None, tpm=None, token_quota=None)
    victim = replicas[0]
    admitted = f'env="{env_id}"'
    before = victim.metric(operator, "cbgate_admitted_requests_total", admitted)
    holders = [threading.Thread(target=lambda: _ignore_cut(victim.url, key)) for _ in range(2)]
    for h in holders:
        h.start()
    wait_until(lambda: victim.metric(operator, "cbgate_admitted_requests_total", admitted) >= before + 2,
               "both holders to be admitted")
    assert chat(replicas[1].url, key, stream=False)[1] == "EXCEED_CONCURRENT_REQUEST_LIMIT"
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    took = elapsed_until(lambda: chat(replicas[1].url, key, stream=False)[0] == 200, "the dead replica's slots")
    assert took < 15, f"took {took:.1f}s"  # the 6 s leases ran out; nobody cleaned up
    for h in holders:
        h.join(30)
    replicas[0] = start_serve(data_dir, env)


def _ignore_cut(url: str, key: str) -> None:
    try:
        chat(url, key)
    except requests.RequestException:
        pass  # its replica died under it


def test_a_keys_own_limits_hold_across_replicas_under_its_environments(cluster):
    """Per-key rpm, concurrency and token quota, exact across the three replicas; a request a key's limit
    refuses costs its environment nothing, and the env's other keys go on."""
    admin, _, _, replicas, (_, _, operator) = cluster
    env_id = admin.create_env("team-keys")
    _, other = admin.create_key(env_id)
    row, limited = admin.create_key(env_id)
    admin.set_env_limits(env_id, {"concurrency": None, "rpm": 10, "tpm": None, "token_quota": None})
    admin.change_key_permissions(row.id, {"rpm": 6}, env_id)
    wait_for_snapshots(admin, replicas, operator)
    results = fire(replicas, limited, 18, stream=False)
    assert sum(status == 200 for status, _, _ in results) == 6  # not 6 per replica
    assert {c for s, c, _ in results if s != 200} == {"EXCEED_RATELIMIT"}
    refused = requests.post(replicas[1].url + "/v1/ai/cloudbase/chat/completions", timeout=30,
                            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
                            headers={"Authorization": f"Bearer {limited}"}).json()
    assert "this API key" in refused["message"] and "QPM" in refused["message"]
    # the env's rpm counted only the 6 admitted: its other key gets exactly the 4 left of its 10
    assert sum(status == 200 for status, _, _ in fire(replicas, other, 8, stream=False)) == 4

    row, held = admin.create_key(env_id)
    admin.set_env_limits(env_id, {"rpm": None})
    admin.change_key_permissions(row.id, {"concurrency": 2}, env_id)
    wait_for_snapshots(admin, replicas, operator)
    results = fire(replicas, held, 9)  # streams of ~3 s: all arrive while the first two run
    assert sum(status == 200 for status, _, _ in results) == 2
    assert {c for s, c, _ in results if s != 200} == {"EXCEED_CONCURRENT_REQUEST_LIMIT"}

    row, metered = admin.create_key(env_id)
    admin.change_key_permissions(row.id, {"token_quota": 300}, env_id)
    wait_for_snapshots(admin, replicas, operator)
    reservation = estimate_cost([{"role": "user", "content": "hello"}], 40)
    results = fire(replicas, metered, 18, stream=False, max_tokens=40)
    results += fire(replicas, metered, 9, stream=False, max_tokens=40)
    used = sum(tokens for status, _, tokens in results if status == 200)
    assert 300 - reservation < used <= 300 + reservation
    assert {c for s, c, _ in results if s != 200} == {"EXCEED_TOKEN_QUOTA_LIMIT"}
    assert chat(replicas[2].url, other, stream=False)[0] == 200  # the env has no quota: its other key goes on
