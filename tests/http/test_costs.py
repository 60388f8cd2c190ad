"""What requests cost, as an operator reads it from the ledger, `cbgate usage` and `cbgate price`: the
catalog's tiered price from the config file, cached tokens at the cache price, a tier boundary, an
environment's own price replacing it for later requests only, and an unpriced model."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from tests.support.catalog import write_catalog
from tests.support.fake_upstream import Reply, start_fake_upstream
from tests.support.gateway import start_in_thread
from tests.support.ledger import DroppedStream, wait_for_records
from tests.support.postgres import store_env_for_tests
from tests.support.wait import wait_until

SECRET = "sk-costs-upstream"
TIERED = {"currency": "CNY", "tiers": [
    {"tier": "0-16k", "input": "0.0008", "output": "0.002", "cache": "0.0002"},
    {"tier": "16k-", "input": "0.0012", "output": "0.004", "cache": "0.0003"}]}


def _upstream(url: str, name: str) -> dict:
    return {"kind": "openai", "base_url": url, "api_key_env": "TEST_COSTS_SECRET", "name": name,
            "model": "upstream-model"}


@pytest.fixture(scope="module")
def priced(tmp_path_factory):
    fake = start_fake_upstream(require_key=SECRET)
    data_dir = tmp_path_factory.mktemp("costs") / "data"
    write_catalog(data_dir, [{"name": "tiered", "price": TIERED, "deployments": [_upstream(fake.url, "tiered-up")]},
                             {"name": "free", "deployments": [_upstream(fake.url, "free-up")]}])
    gw = start_in_thread(data_dir, env={"TEST_COSTS_SECRET": SECRET, "CBGATE_UPSTREAM_ALLOW": "127.0.0.1"})
    yield gw, fake
    gw.stop()
    fake.stop()


def fresh_env(gw) -> tuple[str, str]:
    env_id = gw.admin.create_env()
    _, key = gw.admin.create_key(env_id)
    gw.wait_for_snapshot()
    return env_id, key


def ask(model: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "what does this cost?"}], **extra}


def reported(prompt: int, cached: int, completion: int) -> Reply:
    """The fake's answer of `completion` tokens, reporting this prompt with `cached` of it from a cache."""
    return Reply(events=completion, usage_extra={"prompt_tokens": prompt, "total_tokens": prompt + completion,
                                                 "prompt_tokens_details": {"cached_tokens": cached}})


def cli(gw, *args) -> dict | list:
    result = subprocess.run([sys.executable, "-m", "cbgate", *args, "--data-dir", str(gw.data_dir), "--json"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, **store_env_for_tests()})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def by_id(gw, env_id: str, count: int) -> dict:
    return {r.request_id: r for r in wait_for_records(gw.admin.store, env_id, count)}


def test_cost_to_the_micro_unit_at_a_tier_boundary_with_cached_tokens(priced):
    gw, fake = priced
    env_id, key = fresh_env(gw)
    fake.script(reported(16000, 1234, 7), reported(16001, 1234, 7))
    at = gw.chat(ask("tiered"), key=key)
    over = gw.chat(ask("tiered", stream=True, stream_options={"include_usage": True}), key=key)
    assert at.status_code == over.status_code == 200
    assert at.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 1234
    records = by_id(gw, env_id, 2)
    first, second = records[at.headers["x-request-id"]], records[over.headers["x-request-id"]]
    assert (first.prompt_tokens, first.cache_read_tokens, first.completion_tokens) == (16000, 1234, 7)
    assert (second.prompt_tokens, second.cache_read_tokens, second.completion_tokens) == (16001, 1234, 7)
    # exactly at 16k, the first tier: 14766 x 800 + 1234 x 200 + 7 x 2000 = 12,073,600 millionths per 1k tokens
    assert (first.currency, first.cost_micros) == ("CNY", 12074)
    # one token over, the next tier: 14767 x 1200 + 1234 x 300 + 7 x 4000 = 18,118,600 per 1k tokens
    assert (second.currency, second.cost_micros) == ("CNY", 18119)

    summary = cli(gw, "usage", "--env", env_id, "--by", "model")
    assert summary["cost_micros"] == {"CNY": 12074 + 18119} and summary["unpriced_requests"] == 0
    assert [(r["model"], r["cost_micros"]) for r in summary["rows"]] == [("tiered", {"CNY": 30193})]


def test_an_unpriced_model_costs_nothing_and_says_so(priced):
    gw, fake = priced
    env_id, key = fresh_env(gw)
    fake.script(reported(100, 0, 3))
    assert gw.chat(ask("free"), key=key).status_code == 200
    [record] = wait_for_records(gw.admin.store, env_id, 1)
    assert (record.currency, record.cost_micros) == ("", 0)
    summary = cli(gw, "usage", "--env", env_id, "--by", "key")
    assert summary["cost_micros"] == {} and summary["unpriced_requests"] == 1
    listed = {p["model"]: p for p in cli(gw, "price", "list", "--env", env_id, "--group", "cloudbase")}
    assert listed["free"]["type"] == "Unpriced" and listed["free"]["source"] is None
    assert listed["tiered"]["source"] == "config" and [t["tier"] for t in listed["tiered"]["tiers"]] == ["0-16k", "16k-"]
    table = subprocess.run([sys.executable, "-m", "cbgate", "usage", "--env", env_id, "--data-dir", str(gw.data_dir)],
                           capture_output=True, text=True, timeout=60, env={**os.environ, **store_env_for_tests()})
    assert table.stdout.splitlines()[-1].endswith("\tunpriced")


def test_a_price_change_mid_traffic_changes_only_later_records(priced):
    gw, fake = priced
    env_id, key = fresh_env(gw)
    fake.script(reported(1000, 0, 10))
    before = gw.chat(ask("tiered"), key=key)
    # a stream that starts under the config's price and is still going when the price changes
    fake.script(Reply(events=20, stall_after=5))
    stream = DroppedStream(gw.chat_url(), key, ask("tiered", stream=True))
    assert len(stream.read_events(4)) == 4
    changed = cli(gw, "price", "set", "--env", env_id, "--group", "cloudbase", "--model", "tiered",
                  "--input", "0.01", "--output", "0.05")
    assert changed["source"] == "env" and changed["type"] == "Uniform"
    gw.wait_for_snapshot()
    stream.drop()
    fake.script(reported(1000, 0, 10))
    after = gw.chat(ask("tiered"), key=key)
    records = by_id(gw, env_id, 3)
    old, new = records[before.headers["x-request-id"]], records[after.headers["x-request-id"]]
    assert old.cost_micros == 1000 * 800 // 1000 + 10 * 2000 // 1000 == 820  # the config's first tier
    assert new.cost_micros == 1000 * 10_000 // 1000 + 10 * 50_000 // 1000 == 10_500  # the env's price
    cut = records[stream.request_id]
    assert cut.disconnected and cut.completion_tokens >= 4
    # priced as it started: the config's tier, not the price set while it ran
    assert cut.cost_micros == round((cut.prompt_tokens * 800 + cut.completion_tokens * 2000) / 1000 + 1e-9)

    deleted = cli(gw, "price", "delete", "--env", env_id, "--group", "cloudbase", "--model", "tiered")
    assert deleted["source"] == "config"
    assert {r.request_id: r.cost_micros for r in wait_for_records(gw.admin.store, env_id, 3)} == {
        rid: r.cost_micros for rid, r in records.items()}  # no price change rewrites history


def test_price_admin_api_validates_and_is_the_operators(priced):
    gw, _ = priced
    env_id, key = fresh_env(gw)
    _, operator = gw.admin.create_operator_token("costs")
    gw.wait_for_snapshot()
    url = f"{gw.url}/admin/v1/envs/{env_id}/prices/cloudbase/tiered"
    as_env = requests.put(url, json={"input": "0.1", "output": "0.2"}, headers={"Authorization": f"Bearer {key}"},
                          timeout=30)
    assert as_env.status_code == 403
    headers = {"Authorization": f"Bearer {operator}"}
    for bad in ({"input": "-1", "output": "1"}, {"input": "0.0000001", "output": "1"}, {"input": "1"},
                {"input": "1", "output": "1", "tier": "16k-8k"}, {"input": "1", "output": "1", "currency": "yuan"},
                {"input": "1", "output": "1", "surprise": True}):
        r = requests.put(url, json=bad, headers=headers, timeout=30)
        assert r.status_code == 400 and r.json()["code"] == "INVALID_PARAM", bad
    r = requests.put(url, json={"input": "0.001", "output": "0.002", "tier": "0-32k"}, headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["type"] == "Tiered"
    r = requests.put(url, json={"input": "0.001", "output": "0.002", "tier": "16k-64k"}, headers=headers, timeout=30)
    assert r.status_code == 400 and "overlaps" in r.json()["message"]
    missing = requests.put(f"{gw.url}/admin/v1/envs/{env_id}/prices/cloudbase/no-such-model",
                           json={"input": "1", "output": "1"}, headers=headers, timeout=30)
    assert missing.status_code in (400, 404)
    listed = requests.get(f"{gw.url}/admin/v1/envs/{env_id}/prices", headers={"Authorization": f"Bearer {key}"},
                          timeout=30)
    assert listed.status_code == 200
    assert {p["model"]: p["source"] for p in listed.json()["data"]}["tiered"] == "env"
    wait_until(lambda: gw.app.directory.snapshot.prices.get((env_id, "cloudbase", "tiered")) is not None,
               "the gateway to price with the new table")
