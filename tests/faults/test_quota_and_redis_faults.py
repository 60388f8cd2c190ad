"""Quotas that know the past and a Redis that comes back: token quotas set on a running gateway or kept
through a Redis restarted empty never let an environment spend more than its quota plus one reservation;
a Redis that answers again serves the very next request; lost concurrency leases come back."""
from __future__ import annotations

import os
import threading
import time

import pytest

from cbgate.store.usage import UsageRecord, insert_records
from tests.faults.figures import count
from tests.faults.rig import MODEL, chat, drained_total, records_of, reservation, set_limits, upstream_gateway
from tests.support.fake_upstream import Counters, Reply, start_fake_upstream

PAST = 5000  # tokens the environment used before: by another replica, or before this process started


@pytest.fixture(scope="module")
def fake_server():
    server = start_fake_upstream()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_server):
    fake_server.server.queue.clear()
    fake_server.server.stats = Counters()
    fake_server.default = Reply()
    yield fake_server


def past_usage(gateway, env_id: str) -> None:
    insert_records(gateway.admin.store, [UsageRecord(os.urandom(12).hex(), env_id, None, "cloudbase", MODEL,
                                                     prompt_tokens=PAST, created_at=time.time())])


def until_quota_refuses(gateway, key=None, most: int = 300) -> list:
    answers = []
    for _ in range(most):
        answers.append(chat(gateway, key))
        if answers[-1].status_code == 429:
            break
    return answers


def billed_within_quota(fault: str, gateway, env_id: str, answers: list, quota: int, fake) -> None:
    served = [r for r in answers if r.status_code == 200]
    assert served and answers[-1].status_code == 429
    assert answers[-1].json()["code"] == "EXCEED_TOKEN_QUOTA_LIMIT"
    total = drained_total(gateway, env_id, 1 + len(answers))
    assert total <= quota + reservation()  # the promise: at most one reservation over
    assert total > quota - 2 * reservation()  # and the quota was there to be used, not refused early
    ids = {r.headers["x-request-id"] for r in served}
    rows = records_of(gateway, ids)
    figures = count(fault, ids, rows, served=fake.server.stats.completion_tokens)
    assert (figures.got, figures.duplicated) == (len(ids), 0) and figures.billed == figures.served


def test_a_quota_set_on_a_running_gateway_counts_what_the_ledger_holds(tmp_path, fake):
    gateway = upstream_gateway(tmp_path / "data", fake.url)
    try:
        past_usage(gateway, gateway.env_id)
        quota = PAST + 300
        set_limits(gateway, gateway.env_id, token_quota=quota)
        answers = until_quota_refuses(gateway)
        billed_within_quota("quota set on a running gateway, no Redis", gateway, gateway.env_id, answers, quota, fake)
    finally:
        gateway.stop()


def test_a_redis_restarted_empty_keeps_the_quota(tmp_path, fake, own_redis):
    gateway = upstream_gateway(tmp_path / "data", fake.url, env={"CBGATE_REDIS_URL": own_redis.url})
    try:
        past_usage(gateway, gateway.env_id)
        quota = PAST + 400
        set_limits(gateway, gateway.env_id, token_quota=quota)
        before = [chat(gateway) for _ in range(15)]
        assert all(r.status_code == 200 for r in before)
        own_redis.stop()
        own_redis.start()  # no persistence: every counter and lease is gone
        answers = before + until_quota_refuses(gateway)
        assert {r.status_code for r in answers} == {200, 429}  # no request failed once Redis was back
        billed_within_quota("Redis restarted empty, quota set", gateway, gateway.env_id, answers, quota, fake)
    finally:
        gateway.stop()


@pytest.mark.parametrize("failure", ["fail-open", "fail-closed"])
def test_during_and_after_a_redis_outage(tmp_path, fake, own_redis, failure):
    """During: the quota fails closed; the other limits as CBGATE_RATELIMIT_FAILURE says. After: the
    first requests once Redis answers are served."""
    gateway = upstream_gateway(tmp_path / "data", fake.url,
                               env={"CBGATE_REDIS_URL": own_redis.url, "CBGATE_RATELIMIT_FAILURE": failure})
    try:
        quota_env = gateway.admin.create_env("with-quota")
        _, quota_key = gateway.admin.create_key(quota_env)
        set_limits(gateway, quota_env, token_quota=100_000)
        assert chat(gateway).status_code == chat(gateway, quota_key).status_code == 200
        own_redis.stop()
        plain, quota = chat(gateway), chat(gateway, quota_key)
        assert plain.status_code == (200 if failure == "fail-open" else 503)
        assert quota.status_code == 503 and quota.json()["code"] == "SYS_ERR"
        own_redis.start()
        after = [chat(gateway, key) for _ in range(15) for key in (None, quota_key)]
        assert [r.status_code for r in after] == [200] * 30
        served = [r for r in [plain, *after] if r.status_code == 200]
        ids = {r.headers["x-request-id"] for r in served}
        rows = records_of(gateway, ids, [gateway.env_id, quota_env])
        figures = count(f"Redis outage, {failure}, then back", ids, rows, served=sum(
            r.json()["usage"]["completion_tokens"] for r in served))
        assert (figures.expected, figures.got, figures.duplicated) == (len(ids), len(ids), 0)
        assert figures.billed == figures.served
    finally:
        gateway.stop()


def test_a_redis_restarted_under_load_keeps_the_running_requests_slots(tmp_path, fake, own_redis):
    gateway = upstream_gateway(tmp_path / "data", fake.url, env={"CBGATE_REDIS_URL": own_redis.url})
    try:
        set_limits(gateway, gateway.env_id, concurrency=3)
        fake.default = Reply(content=" ".join(["word"] * 30), chunk_delay=0.05)
        started = [threading.Event() for _ in range(3)]
        statuses = []

        def stream(ready: threading.Event) -> None:
            with gateway.chat(body_stream(), stream=True) as r:
                statuses.append(r.status_code)
                for _ in r.iter_lines():
                    ready.set()
        clients = [threading.Thread(target=stream, args=(e,)) for e in started]
        for c in clients:
            c.start()
        for e in started:
            assert e.wait(15)
        own_redis.stop()
        own_redis.start()  # empty: the three running requests' leases are gone
        refused = chat(gateway)
        for c in clients:
            c.join(30)
        assert statuses == [200, 200, 200]
        assert refused.status_code == 429 and refused.json()["code"] == "EXCEED_CONCURRENT_REQUEST_LIMIT"
        fake.default = Reply()
        assert chat(gateway).status_code == 200  # and the slots are free again once they ended
    finally:
        gateway.stop()


def body_stream() -> dict:
    return {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "a long answer please"}]}
