"""`cbgate usage`, as scripts call it, over what a running gateway recorded."""
import json
import os
import subprocess
import sys
import time

from tests.support.ledger import wait_for_records
from tests.support.postgres import store_env_for_tests

MODEL = "gemma-3-270m"


def usage(gateway, *args, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "cbgate", "usage", *args, "--data-dir", str(gateway.data_dir)],
                            capture_output=True, text=True, timeout=60, env={**os.environ, **store_env_for_tests()})
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_usage_json_totals_and_rows(gateway):
    bodies = [gateway.chat({"model": MODEL, "messages": [{"role": "user", "content": text}]}).json()
              for text in ("hello there", "a somewhat longer question")]
    wait_for_records(gateway.admin.store, gateway.env_id, 2)
    expected = sum(b["usage"]["total_tokens"] for b in bodies)

    summary = json.loads(usage(gateway, "--env", gateway.env_id, "--json").stdout)
    assert summary["total_tokens"] == expected and summary["requests"] == 2 and summary["rows"] == []

    by_model = json.loads(usage(gateway, "--env", gateway.env_id, "--by", "model", "--json").stdout)
    assert by_model["total_tokens"] == expected
    assert [(r["model"], r["requests"], r["total_tokens"]) for r in by_model["rows"]] == [(MODEL, 2, expected)]

    key_id = gateway.admin.list_keys(gateway.env_id)[0].id
    by_key = json.loads(usage(gateway, "--env", gateway.env_id, "--by", "key", "--json").stdout)
    assert [(r["key"], r["total_tokens"]) for r in by_key["rows"]] == [(key_id, expected)]
    assert gateway.key not in json.dumps(by_key)

    today = time.strftime("%Y-%m-%d", time.gmtime())
    by_day = json.loads(usage(gateway, "--env", gateway.env_id, "--by", "day", "--since", "7d", "--json").stdout)
    assert [(r["day"], r["total_tokens"]) for r in by_day["rows"]] == [(today, expected)]

    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    later = json.loads(usage(gateway, "--env", gateway.env_id, "--since", tomorrow, "--json").stdout)
    assert later["total_tokens"] == 0 and later["requests"] == 0


def test_usage_table_and_errors(gateway):
    gateway.chat({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    wait_for_records(gateway.admin.store, gateway.env_id, 1)
    table = usage(gateway, "--env", gateway.env_id, "--by", "model").stdout.splitlines()
    assert table[0].split("\t")[0] == "model" and table[1].startswith(MODEL + "\t")
    assert table[-1].startswith("total\t1\t0\t")

    bad_date = usage(gateway, "--env", gateway.env_id, "--since", "last tuesday", check=False)
    assert bad_date.returncode == 1 and "--since" in bad_date.stderr and "Traceback" not in bad_date.stderr
    no_env = usage(gateway, "--env", "no-such-env", "--json", check=False)
    assert no_env.returncode == 1 and "no-such-env" in no_env.stderr
    bad_by = usage(gateway, "--env", gateway.env_id, "--by", "colour", check=False)
    assert bad_by.returncode == 2


def test_usage_of_one_key_this_month_by_model(gateway):
    _, other = gateway.admin.create_key(gateway.env_id, name="other")
    gateway.wait_for_snapshot()
    mine = gateway.chat({"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}).json()
    gateway.chat({"model": MODEL, "messages": [{"role": "user", "content": "theirs"}]}, key=other)
    wait_for_records(gateway.admin.store, gateway.env_id, 2)
    key_id = next(k.id for k in gateway.admin.list_keys(gateway.env_id) if k.name != "other")
    month = time.strftime("%Y-%m-01", time.gmtime())
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    args = ["--env", gateway.env_id, "--key", key_id, "--by", "model", "--since", month, "--json"]
    summary = json.loads(usage(gateway, *args, "--until", tomorrow).stdout)
    assert summary["requests"] == 1 and summary["key"] == key_id
    assert [(r["model"], r["total_tokens"]) for r in summary["rows"]] == [(MODEL, mine["usage"]["total_tokens"])]
    before = json.loads(usage(gateway, *args, "--until", month).stdout)
    assert before["requests"] == 0
    bad = usage(gateway, *args, "--until", "soon", check=False)
    assert bad.returncode == 1 and "--until" in bad.stderr and "Traceback" not in bad.stderr
