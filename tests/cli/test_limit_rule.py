"""One rule for what a limit may be set to, whichever way it is set: `cbgate limits set`, `cbgate key set`,
the admin API's env limits and a key's permissions refuse the same values with the same reason, and take
the same good ones."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from cbgate.text import MAX_SAFE_INTEGER
from tests.support.postgres import store_env_for_tests

REASON = f"rpm must be a whole number from 1 to {MAX_SAFE_INTEGER}"


def cli(gateway, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cbgate", *args, "--data-dir", str(gateway.data_dir)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **store_env_for_tests()})


@pytest.fixture
def operator(gateway):
    _, token = gateway.admin.create_operator_token("limit-rule")
    gateway.wait_for_snapshot()
    return {"Authorization": f"Bearer {token}"}


def test_every_way_of_setting_a_limit_refuses_the_same_values(gateway, operator):
    row, _ = gateway.admin.create_key(gateway.env_id, name="limited")
    for bad in (0, -3, MAX_SAFE_INTEGER + 1):
        env_cli = cli(gateway, "limits", "set", "--env", gateway.env_id, "--rpm", str(bad))
        key_cli = cli(gateway, "key", "set", "--env", gateway.env_id, row.id, "--rpm", str(bad))
        env_api = requests.put(f"{gateway.url}/admin/v1/envs/{gateway.env_id}/limits", json={"rpm": bad},
                               headers=operator, timeout=30)
        key_api = requests.put(f"{gateway.url}/admin/v1/envs/{gateway.env_id}/keys/{row.id}/permissions",
                               json={"rpm": bad}, headers=operator, timeout=30)
        assert env_cli.returncode == key_cli.returncode == 2, bad
        assert REASON in env_cli.stderr and REASON in key_cli.stderr
        for answer in (env_api, key_api):
            assert answer.status_code == 400 and answer.json()["code"] == "INVALID_PARAM"
            assert answer.json()["message"].startswith(REASON)


def test_every_way_takes_a_number_and_off(gateway, operator):
    row, _ = gateway.admin.create_key(gateway.env_id, name="limited")
    assert cli(gateway, "key", "set", "--env", gateway.env_id, row.id, "--rpm", "7").returncode == 0
    key_api = requests.put(f"{gateway.url}/admin/v1/envs/{gateway.env_id}/keys/{row.id}/permissions",
                           json={"rpm": None}, headers=operator, timeout=30)
    assert key_api.status_code == 200 and key_api.json()["rpm"] is None
    assert cli(gateway, "limits", "set", "--env", gateway.env_id, "--rpm", "off").returncode == 0
    env_api = requests.put(f"{gateway.url}/admin/v1/envs/{gateway.env_id}/limits", json={"rpm": 600},
                           headers=operator, timeout=30)
    assert env_api.status_code == 200 and env_api.json()["rpm"] == 600
