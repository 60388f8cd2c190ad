"""Budgets as a client and an operator meet them, on one gateway (the in-process counter): money spent to the
micro-unit of the ledger's own costs, a refusal that names the budget and when it resets, token budgets, a
key's budget beside its environment's, a budget period that rolls over (the gateway's clock moved, no sleep),
and every billed surface going through the same admission."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from cbgate.core.agent_admin import AgentSpec
from tests.support.catalog import write_catalog
from tests.support.fake_upstream import Reply, start_fake_upstream
from tests.support.gateway import start_in_thread
from tests.support.ledger import wait_for_records

SECRET = "sk-budgets-upstream"
PRICE = {"currency": "CNY", "input": "0.002", "output": "0.008"}  # 2 and 8 micro-units a token


def _upstream(url: str, name: str, kind: str = "openai") -> dict:
    return {"kind": kind, "base_url": url, "api_key_env": "TEST_BUDGETS_SECRET", "name": name,
            "model": "upstream-model"}


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory):
    fake = start_fake_upstream(require_key=SECRET, default=Reply(events=10))
    data_dir = tmp_path_factory.mktemp("budgets") / "data"
    write_catalog(data_dir, [
        {"name": "priced", "price": PRICE, "deployments": [_upstream(fake.url, "priced-up")]},
        {"name": "priced-claude", "price": PRICE, "deployments": [_upstream(fake.root, "claude-up", "anthropic")]},
        {"name": "in-usd", "price": {**PRICE, "currency": "USD"}, "deployments": [_upstream(fake.url, "usd-up")]},
        {"name": "free", "deployments": [_upstream(fake.url, "free-up")]}])
    gw = start_in_thread(data_dir, env={"TEST_BUDGETS_SECRET": SECRET, "CBGATE_UPSTREAM_ALLOW": "127.0.0.1"})
    yield gw, fake
    gw.stop()
    fake.stop()


def fresh_env(gw, keys: int = 1) -> tuple[str, list[tuple[str, str]]]:
    env_id = gw.admin.create_env()
    made = [gw.admin.create_key(env_id) for _ in range(keys)]
    gw.wait_for_snapshot()
    return env_id, [(row.id, plain) for row, plain in made]


def ask(model: str = "priced", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "how much is left?"}], "max_tokens": 10, **extra}


def set_budget(gw, env_id: str, **kwargs) -> dict:
    view = gw.admin.budgets.set_budget(env_id, kwargs.pop("key_id", None), kwargs.pop("period"), **kwargs)
    gw.wait_for_snapshot()
    return view


def spend_until_refused(gw, key: str, body: dict, most: int = 50) -> tuple[int, object]:
    for served in range(most):
        answer = gw.chat(body, key=key)
        if answer.status_code != 200:
            return served, answer
    raise AssertionError(f"{most} requests and no refusal")


def next_month_start(now: float) -> str:
    d = datetime.fromtimestamp(now, timezone.utc)
    first = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=timezone.utc)
    return first.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_money_budget_counts_the_ledgers_cost_to_the_micro_unit_and_says_when_it_resets(budgeted):
    gw, _ = budgeted
    env_id, [(_, key)] = fresh_env(gw)
    budget = set_budget(gw, env_id, period="month", amount="0.001", currency="CNY")  # 1000 micro-units
    served, refused = spend_until_refused(gw, key, ask())
    records = wait_for_records(gw.admin.store, env_id, served + 1)
    billed = [r for r in records if r.status == 200]
    assert len(billed) == served >= 2
    for r in billed:  # the price's rule, by hand: 2 per prompt token, 8 per completion token
        assert r.cost_micros == 2 * r.prompt_tokens + 8 * r.completion_tokens and r.currency == "CNY"
    spent = sum(r.cost_micros for r in billed)
    worst = max(r.cost_micros for r in billed)
    assert 1000 - 2 * worst < spent <= 1000  # refused only once too little was left for one more

    assert refused.status_code == 429 and refused.json()["code"] == "EXCEED_TOKEN_QUOTA_LIMIT"
    message = refused.json()["message"]
    assert "the environment's budget of 0.001 CNY per month (UTC)" in message
    assert f"it resets at {next_month_start(billed[0].created_at)}" in message
    assert int(refused.headers["Retry-After"]) > 0

    view = next(b for b in gw.admin.budgets.list_budgets(env_id) if b["id"] == budget["id"])
    assert view["spent"] == f"0.{spent:06d}".rstrip("0") and view["reserved"] == "0.00"


def test_a_model_priced_in_another_currency_is_refused_and_an_unpriced_one_costs_nothing(budgeted):
    gw, _ = budgeted
    env_id, [(_, key)] = fresh_env(gw)
    set_budget(gw, env_id, period="day", amount="0.0001")  # 100 micro-units of CNY
    other = gw.chat(ask("in-usd"), key=key)
    assert other.status_code == 403 and "priced in USD" in other.json()["message"]
    assert all(gw.chat(ask("free"), key=key).status_code == 200 for _ in range(3))


def test_a_token_budget_of_one_key_leaves_its_sibling_alone_and_the_env_budget_holds_both(budgeted):
    gw, _ = budgeted
    env_id, [(capped_id, capped), (_, sibling)] = fresh_env(gw, keys=2)
    set_budget(gw, env_id, key_id=capped_id, period="day", tokens=120)
    served, refused = spend_until_refused(gw, capped, ask())
    assert served >= 1
    assert refused.status_code == 429 and refused.json()["code"] == "EXCEED_TOKEN_QUOTA_LIMIT"
    assert f"API key {capped_id}'s budget of 120 tokens per day (UTC)" in refused.json()["message"]
    assert "resets at " in refused.json()["message"] and "T00:00:00Z" in refused.json()["message"]
    records = wait_for_records(gw.admin.store, env_id, served + 1)
    assert sum(r.total_tokens for r in records if r.key_id == capped_id) <= 120
    assert gw.chat(ask(), key=sibling).status_code == 200  # the key's budget is its own

    set_budget(gw, env_id, period="total", tokens=1)  # the environment's: every key's requests
    for key in (capped, sibling):
        answer = gw.chat(ask(), key=key)
        assert answer.status_code == 429
    assert "the environment's budget of 1 tokens in total" in gw.chat(ask(), key=sibling).json()["message"]
    assert "never resets" in gw.chat(ask(), key=sibling).json()["message"]


def test_a_day_budget_starts_again_when_the_day_rolls_over(budgeted):
    gw, _ = budgeted
    env_id, [(_, key)] = fresh_env(gw)
    gate = gw.app.wiring.budgets
    now = [datetime.now(timezone.utc).timestamp()]
    gate.clock = lambda: now[0]
    try:
        set_budget(gw, env_id, period="day", tokens=150)
        served, refused = spend_until_refused(gw, key, ask())
        assert served >= 1 and refused.status_code == 429
        day = datetime.fromtimestamp(now[0], timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        now[0] = day.timestamp() + 86400 + 1  # one second into tomorrow (UTC)
        assert gw.chat(ask(), key=key).status_code == 200
        again, refused = spend_until_refused(gw, key, ask())
        tomorrow_end = datetime.fromtimestamp(day.timestamp() + 2 * 86400, timezone.utc)
        assert f"it resets at {tomorrow_end.strftime('%Y-%m-%dT%H:%M:%SZ')}" in refused.json()["message"]
    finally:
        gate.clock = gw.app.wiring.clock


@pytest.mark.parametrize("surface", ["messages", "responses", "images"])
def test_every_billed_surface_is_refused_by_a_spent_budget(budgeted, surface):
    gw, _ = budgeted
    env_id, [(_, key)] = fresh_env(gw)
    set_budget(gw, env_id, period="total", amount="0.000001")
    url = f"{gw.url}/v1/ai/cloudbase/"
    body = {"messages": {"model": "priced-claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
            "responses": {"model": "priced", "input": "hi", "max_output_tokens": 10},
            "images": {"model": "priced", "prompt": "a cat"}}[surface]
    path = {"messages": "v1/messages", "responses": "responses", "images": "images/generations"}[surface]
    answer = requests.post(url + path, json=body, headers=gw.headers(key), timeout=30)
    assert answer.status_code == 429, answer.text
    assert "budget of 0.000001 CNY in total" in answer.text


def test_an_agents_model_rounds_spend_from_the_budget(budgeted):
    gw, _ = budgeted
    env_id, [(_, key)] = fresh_env(gw)
    agent = gw.admin.agents.create(env_id, AgentSpec(name="spender", model="priced"))
    set_budget(gw, env_id, period="day", tokens=1100)  # a run names no max_tokens: 1024 reserved for its answer
    url = f"{gw.url}/v1/aibot/bots/{agent.id}/send-message"
    statuses = []
    while not statuses or statuses[-1] == 200:
        answer = requests.post(url, json={"msg": "hello"}, headers=gw.headers(key), timeout=30)
        statuses.append(answer.status_code)
        assert len(statuses) < 40
    assert len(statuses) >= 2 and statuses[-1] == 429
    assert "the environment's budget of 1100 tokens per day" in answer.text
    runs = [r for r in wait_for_records(gw.admin.store, env_id, len(statuses)) if r.surface == "agent"]
    assert len(runs) == len(statuses) and 0 < sum(r.total_tokens for r in runs) <= 1100
