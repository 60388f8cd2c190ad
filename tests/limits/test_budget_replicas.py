"""A key's money budget on three `cbgate serve` replicas sharing PostgreSQL and Redis, under 30 concurrent
clients: together they spend no more than the budget plus one request's worst case (each replica alone would
have let the key spend the budget three times), and every client ends with the budget's 429."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from cbgate.limits.base import estimate_cost
from tests.support.ledger import wait_for_records
from tests.support.replicas import shared_replicas
from tests.support.wait import wait_until

MODEL = "priced-gpt"
EVENTS = 10  # completion tokens of every answer (and each request's max_tokens)
PRICE = {"currency": "CNY", "input": "0.002", "output": "0.008"}  # 2 and 8 micro-units a token
BUDGET = 5000  # micro-units: "0.005"
CLIENTS = 30
MESSAGES = [{"role": "user", "content": "spend a little"}]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with shared_replicas(tmp_path_factory.mktemp("budget-replicas") / "data", MODEL, EVENTS, 5, PRICE) as shared:
        admin = shared.admin
        env_id = admin.create_env("team-budget")
        admin.set_env_limits(env_id, {"concurrency": CLIENTS + 5})
        row, key = admin.create_key(env_id)
        admin.budgets.set_budget(env_id, row.id, "month", amount="0.005")
        _, operator = admin.create_operator_token("tests")
        yield admin, env_id, row.id, key, shared.start(3), operator


def client(url: str, key: str) -> list[int]:
    """Ask until the budget refuses; the statuses answered."""
    statuses = []
    body = {"model": MODEL, "max_tokens": EVENTS, "messages": MESSAGES}
    while not statuses or statuses[-1] == 200:
        answer = requests.post(url + "/v1/ai/cloudbase/chat/completions", json=body, timeout=60,
                               headers={"Authorization": f"Bearer {key}"})
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert answer.json()["code"] == "EXCEED_TOKEN_QUOTA_LIMIT" and "budget of 0.005 CNY per month" in \
                answer.json()["message"]
        if len(statuses) > 200:
            break
    return statuses


def test_three_replicas_spend_at_most_the_budget_plus_one_worst_case(cluster):
    admin, env_id, key_id, key, replicas, operator = cluster
    target = admin.store.revision()
    wait_until(lambda: all(r.metric(operator, "cbgate_tenant_snapshot_revision") >= target for r in replicas),
               "every replica to load the budget")
    with ThreadPoolExecutor(CLIENTS) as pool:
        runs = list(pool.map(lambda i: client(replicas[i % 3].url, key), range(CLIENTS)))
    assert all(run[-1] == 429 for run in runs)  # every client ended refused by the budget, none failed
    served = sum(run.count(200) for run in runs)
    assert {s for run in runs for s in run} == {200, 429}
    records = [r for r in wait_for_records(admin.store, env_id, served + CLIENTS) if r.status == 200]
    assert len(records) == served
    prompt = estimate_cost(MESSAGES, EVENTS) - EVENTS  # the prompt as admission counts it (generously)
    worst = 2 * prompt + 8 * EVENTS
    spent = sum(r.cost_micros for r in records)
    assert all(r.cost_micros == 2 * r.prompt_tokens + 8 * r.completion_tokens for r in records)
    assert spent <= BUDGET + worst  # the promise; one replica's counter alone would have allowed 3x
    assert spent > BUDGET - CLIENTS * worst  # and the budget was there to be used
    assert len({r.deployment for r in records}) == 1
    views = requests.get(f"{replicas[1].url}/admin/v1/envs/{env_id}/budgets", timeout=10,
                         headers={"Authorization": f"Bearer {operator}"}).json()["data"]
    assert views[0]["key_id"] == key_id and views[0]["reserved"] == "0.00"
    shown = int(round(float(views[0]["spent"]) * 1_000_000))
    assert shown == spent
