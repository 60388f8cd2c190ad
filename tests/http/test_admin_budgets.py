"""Budgets through the admin API, in the shape the console reads: set (an upsert per env, key and period),
list with spend, delete; the operator sets them, the environment's own server key only reads them, another
environment neither; and `cbgate budget` speaks the same operations."""
import json
import os
import re
import subprocess
import sys

import pytest

from tests.support.admin_plane import make_cast
from tests.support.gateway import start_in_thread
from tests.support.postgres import store_env_for_tests

FIELDS = {"id", "env", "key_id", "kind", "period", "limit", "currency", "spent", "reserved", "resets_at"}


@pytest.fixture(scope="module")
def cast(tmp_path_factory):
    gw = start_in_thread(tmp_path_factory.mktemp("admin-budgets") / "data")
    yield make_cast(gw)
    gw.stop()


def path(cast, env=None) -> str:
    return f"/admin/v1/envs/{env or cast.gw.env_id}/budgets"


def test_operator_sets_money_and_token_budgets_and_setting_again_replaces(cast):
    env = cast.gw.env_id
    money = cast.call("PUT", path(cast), cast.operator,
                      json={"key_id": None, "period": "month", "amount": "12.50", "currency": "CNY"})
    assert money.status_code == 200, money.text
    made = money.json()
    assert set(made) == FIELDS and made["id"].startswith("bud-")
    assert made | {"id": None, "resets_at": None} == {
        "id": None, "env": env, "key_id": None, "kind": "money", "period": "month", "limit": "12.50",
        "currency": "CNY", "spent": "0.00", "reserved": "0.00", "resets_at": None}
    assert re.fullmatch(r"\d{4}-\d\d-01T00:00:00Z", made["resets_at"])

    key_id = cast.gw.admin.list_keys(env)[0].id
    tokens = cast.call("PUT", path(cast), cast.operator, json={"key_id": key_id, "period": "day", "tokens": 100000})
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["limit"] == 100000 and tokens.json()["spent"] == 0 and tokens.json()["currency"] is None
    assert tokens.json()["key_id"] == key_id and tokens.json()["resets_at"].endswith("T00:00:00Z")

    again = cast.call("PUT", path(cast), cast.operator, json={"period": "month", "amount": 20})
    assert again.json()["id"] == made["id"] and again.json()["limit"] == "20.00"

    listed = cast.call("GET", path(cast), cast.server)
    assert listed.status_code == 200
    assert {(b["id"], b["limit"]) for b in listed.json()["data"]} == {(made["id"], "20.00"),
                                                                      (tokens.json()["id"], 100000)}

    total = cast.call("PUT", path(cast), cast.operator, json={"period": "total", "tokens": 5})
    assert total.json()["resets_at"] is None
    gone = cast.call("DELETE", f"{path(cast)}/{total.json()['id']}", cast.operator)
    assert gone.status_code == 200 and gone.json()["id"] == total.json()["id"]
    assert cast.call("DELETE", f"{path(cast)}/{total.json()['id']}", cast.operator).status_code == 404


def test_only_the_operator_changes_budgets_and_other_envs_see_nothing(cast):
    body = {"period": "day", "amount": "1"}
    refused = cast.call("PUT", path(cast), cast.server, json=body)
    assert refused.status_code == 403 and refused.json()["code"] == "PERMISSION_DENIED"
    assert cast.call("GET", path(cast), cast.other_server).status_code == 403
    assert cast.call("PUT", path(cast), cast.other_server, json=body).status_code == 403
    assert cast.call("GET", path(cast), cast.publishable).status_code == 403
    mine = cast.call("PUT", path(cast), cast.operator, json=body).json()
    assert cast.call("DELETE", f"{path(cast)}/{mine['id']}", cast.server).status_code == 403
    theirs = cast.call("DELETE", f"{path(cast, cast.other_env)}/{mine['id']}", cast.operator)
    assert theirs.status_code == 404  # the id is not one of that environment's


@pytest.mark.parametrize("body, says", [
    ({"period": "week", "tokens": 5}, "period"),
    ({"period": "day"}, "either amount"),
    ({"period": "day", "amount": "1", "tokens": 5}, "either amount"),
    ({"period": "day", "amount": "-1"}, "above 0"),
    ({"period": "day", "amount": "0.0000001"}, "6 decimals"),
    ({"period": "day", "amount": "abc"}, "amount"),
    ({"period": "day", "amount": True}, "amount"),
    ({"period": "day", "amount": "1", "currency": "cny"}, "currency"),
    ({"period": "day", "tokens": 0}, "tokens"),
    ({"period": "day", "tokens": 1.5}, "tokens"),
    ({"period": "day", "tokens": 5, "currency": "CNY"}, "no currency"),
    ({"period": "day", "tokens": 5, "key_id": "key-nope"}, "not an API key"),
    ({"period": "day", "tokens": 5, "key_id": 7}, "key_id"),
    ({"period": "day", "tokens": 5, "limit": 3}, "unknown field"),
])
def test_bad_budgets_are_refused_with_a_reason(cast, body, says):
    answer = cast.call("PUT", path(cast), cast.operator, json=body)
    assert answer.status_code == 400 and answer.json()["code"] == "INVALID_PARAM", answer.text
    assert says in answer.json()["message"]


def test_the_cli_sets_lists_shows_and_deletes_the_same_budgets(cast):
    gw = cast.gw

    def cli(*args, ok=True):
        result = subprocess.run([sys.executable, "-m", "cbgate", "budget", *args, "--data-dir", str(gw.data_dir)],
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, **store_env_for_tests()})
        assert (result.returncode == 0) == ok, result.stderr
        return result

    made = json.loads(cli("set", "--env", gw.env_id, "--amount", "3.25", "--currency", "USD", "--period", "day",
                          "--json").stdout)
    assert made["limit"] == "3.25" and made["currency"] == "USD" and made["kind"] == "money"
    api = cast.call("GET", path(cast), cast.operator).json()["data"]
    assert made["id"] in {b["id"] for b in api}
    shown = json.loads(cli("show", "--env", gw.env_id, made["id"], "--json").stdout)
    assert shown == made
    table = cli("list", "--env", gw.env_id).stdout.splitlines()
    assert table[0].split("\t")[:3] == ["id", "scope", "kind"] and any(made["id"] in line for line in table[1:])
    assert "--tokens" in cli("set", "--env", gw.env_id, "--tokens", "0", "--period", "day", ok=False).stderr
    assert json.loads(cli("delete", "--env", gw.env_id, made["id"], "--json").stdout)["id"] == made["id"]
    assert "no budget" in cli("show", "--env", gw.env_id, made["id"], ok=False).stderr
