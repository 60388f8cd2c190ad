"""Budgets through Redis faults: a Redis restarted empty does not forget what was spent (the counter is rebuilt
from the ledger's records of the period), a Redis that does not answer refuses budgeted requests whatever the
rate limits' failure mode (a budget fails closed, as the token quota does), and the next request once it is
back is served."""
from __future__ import annotations

import os
import time

import pytest
import requests

from cbgate.store.usage import UsageRecord, insert_records
from tests.support.catalog import write_catalog
from tests.support.fake_upstream import Counters, Reply, start_fake_upstream
from tests.support.gateway import start_in_thread
from tests.support.ledger import wait_for_records

MODEL = "priced-gpt"
PRICE = {"currency": "CNY", "input": "0.002", "output": "0.008"}  # 2 and 8 micro-units a token
PAST = 4000  # micro-units the key spent this month before the gateway started


@pytest.fixture(scope="module")
def fake_server():
    server = start_fake_upstream(default=Reply(events=8))
    yield server
    server.stop()


@pytest.fixture
def fake(fake_server):
    fake_server.server.queue.clear()
    fake_server.server.stats = Counters()
    yield fake_server


def gateway_on(tmp_path, fake, redis_url: str, failure: str = "fail-open"):
    data_dir = tmp_path / "data"
    write_catalog(data_dir, [{"name": MODEL, "price": PRICE, "deployments": [{
        "kind": "openai", "base_url": fake.url, "name": "fake-openai"}]}], include_embedded=False)
    return start_in_thread(data_dir, env={"CBGATE_REDIS_URL": redis_url, "CBGATE_RATELIMIT_FAILURE": failure})


def chat(gw, key: str) -> requests.Response:
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "what did I spend?"}]}
    return requests.post(gw.chat_url(), json=body, headers=gw.headers(key), timeout=30)


def key_budget(gw, amount: str) -> str:
    env_id = gw.env_id
    key_id = gw.admin.list_keys(env_id)[0].id
    gw.admin.budgets.set_budget(env_id, key_id, "month", amount=amount)
    gw.wait_for_snapshot()
    return key_id


def test_a_redis_restarted_empty_does_not_forget_the_spend(tmp_path, fake, own_redis):
    gw = gateway_on(tmp_path, fake, own_redis.url)
    try:
        key_id = key_budget(gw, "0.0065")  # 6500 micro-units, 4000 of them spent before
        insert_records(gw.admin.store, [UsageRecord(os.urandom(12).hex(), gw.env_id, key_id, "cloudbase", MODEL,
                                                    prompt_tokens=1, cost_micros=PAST, currency="CNY",
                                                    created_at=time.time())])
        before = [chat(gw, gw.key) for _ in range(3)]
        assert [r.status_code for r in before] == [200] * 3
        own_redis.stop()
        own_redis.start()  # no persistence: the budget's counter is gone
        answers = list(before)
        while answers[-1].status_code == 200 and len(answers) < 100:
            answers.append(chat(gw, gw.key))
        assert {r.status_code for r in answers} == {200, 429}  # nothing failed once Redis was back
        refused = answers[-1].json()
        assert refused["code"] == "EXCEED_TOKEN_QUOTA_LIMIT" and f"API key {key_id}'s budget of 0.0065 CNY" in \
            refused["message"]
        served = [r for r in answers if r.status_code == 200]
        records = [r for r in wait_for_records(gw.admin.store, gw.env_id, len(answers) + 1) if r.status == 200]
        assert len(records) == len(served) + 1  # the past record and every served request
        spent = sum(r.cost_micros for r in records)
        worst = max(r.cost_micros for r in records if r.cost_micros != PAST)
        assert spent <= 6500  # a forgetting counter would have let ~4000 micro-units more through
        assert spent > 6500 - 2 * worst
        view = gw.admin.budgets.list_budgets(gw.env_id)[0]
        assert view["spent"] == f"0.{spent:06d}".rstrip("0").ljust(4, "0")
    finally:
        gw.stop()


@pytest.mark.parametrize("failure", ["fail-open", "fail-closed"])
def test_a_budget_fails_closed_while_redis_is_away_and_serves_once_it_is_back(tmp_path, fake, own_redis, failure):
    gw = gateway_on(tmp_path, fake, own_redis.url, failure)
    try:
        unbudgeted_env = gw.admin.create_env("no-budget")
        _, unbudgeted = gw.admin.create_key(unbudgeted_env)
        key_budget(gw, "100")
        assert chat(gw, gw.key).status_code == chat(gw, unbudgeted).status_code == 200
        own_redis.stop()
        budgeted, plain = chat(gw, gw.key), chat(gw, unbudgeted)
        assert budgeted.status_code == 503 and budgeted.json()["code"] == "SYS_ERR"
        assert "budgets" in budgeted.json()["message"]
        assert plain.status_code == (200 if failure == "fail-open" else 503)
        own_redis.start()
        assert [chat(gw, gw.key).status_code for _ in range(3)] == [200] * 3
    finally:
        gw.stop()
