"""The CLI contract scripts rely on: arguments, last line of stdout, exit codes, clear errors."""
import os
import subprocess
import sys

import pytest


def cbgate(data_dir, *args, check=True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "cbgate", *args, "--data-dir", str(data_dir)],
                            capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})
    if check:
        assert result.returncode == 0, result.stderr
    return result


def last_line(result) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_env_and_key_lifecycle(tmp_path):
    env_id = last_line(cbgate(tmp_path, "env", "create", "team-a"))
    assert env_id == "team-a"
    generated = last_line(cbgate(tmp_path, "env", "create"))
    assert generated.startswith("env-")
    listed = cbgate(tmp_path, "env", "list").stdout
    assert "team-a" in listed and generated in listed

    key = last_line(cbgate(tmp_path, "key", "create", "--env", "team-a", "--expires-days", "30"))
    assert key.startswith("cbsk_") and len(key) >= 5 + 43  # 256 random bits
    listing = cbgate(tmp_path, "key", "list", "--env", "team-a").stdout
    assert key not in listing and key[:12] in listing  # only the prefix is ever shown again
    key_id = listing.splitlines()[1].split("\t")[0]
    assert cbgate(tmp_path, "key", "revoke", key_id).returncode == 0
    again = cbgate(tmp_path, "key", "revoke", key_id)  # idempotent, and says so
    assert last_line(again) == f"already revoked {key_id} (nothing changed)"
    unknown = cbgate(tmp_path, "key", "revoke", "key-000000000000", check=False)
    assert unknown.returncode == 1 and "no key with id" in unknown.stderr


def test_keys_are_stored_as_digests_only(tmp_path):
    cbgate(tmp_path, "env", "create", "team-a")
    key = last_line(cbgate(tmp_path, "key", "create", "--env", "team-a"))
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("cbgate.db*"))
    assert key.encode() not in stored and key[5:].encode() not in stored


def test_model_switch(tmp_path):
    cbgate(tmp_path, "env", "create", "team-a")
    assert cbgate(tmp_path, "model", "list", "--env", "team-a").stdout.split() == [
        "group", "model", "status", "cloudbase", "smollm2-135m-instruct", "enabled",
        "cloudbase", "gemma-3-270m", "disabled"]  # in the catalog, off until an environment switches it on
    cbgate(tmp_path, "model", "disable", "--env", "team-a", "--group", "cloudbase", "smollm2-135m-instruct")
    assert "enabled" not in cbgate(tmp_path, "model", "list", "--env", "team-a", "--group", "cloudbase").stdout
    cbgate(tmp_path, "model", "enable", "--env", "team-a", "--group", "cloudbase", "gemma-3-270m")
    assert "cloudbase\tgemma-3-270m\tenabled" in cbgate(tmp_path, "model", "list", "--env", "team-a").stdout


@pytest.mark.parametrize("args,message", [
    (("env", "create", "Bad_Id"), "environment id"),
    (("key", "create", "--env", "nope"), "does not exist"),
    (("model", "enable", "--env", "team-a", "--group", "cloudbase", "gpt-9"), "gpt-9"),
    (("key", "create", "--env", "team-a", "--expires-days", "-1"), "positive"),
])
def test_errors_are_one_clear_line(tmp_path, args, message):
    cbgate(tmp_path, "env", "create", "team-a")
    result = cbgate(tmp_path, *args, check=False)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_duplicate_env(tmp_path):
    cbgate(tmp_path, "env", "create", "team-a")
    result = cbgate(tmp_path, "env", "create", "team-a", check=False)
    assert result.returncode == 1 and "already exists" in result.stderr


def test_data_dir_from_the_environment(tmp_path):
    import os

    env = {**os.environ, "CBGATE_DATA_DIR": str(tmp_path / "d")}
    refused = subprocess.run([sys.executable, "-m", "cbgate", "env", "create", "from-env"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "does not exist" in refused.stderr  # only `serve` creates it
    (tmp_path / "d").mkdir()
    out = subprocess.run([sys.executable, "-m", "cbgate", "env", "create", "from-env"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and (tmp_path / "d" / "cbgate.db").exists()


def test_key_set_gives_a_key_its_allow_list_and_limits(tmp_path):
    import json
    cbgate(tmp_path, "env", "create", "team-p")
    cbgate(tmp_path, "key", "create", "--env", "team-p")
    key_id = json.loads(cbgate(tmp_path, "key", "list", "--env", "team-p", "--json").stdout)[0]["id"]
    shown = json.loads(cbgate(tmp_path, "key", "set", "--env", "team-p", key_id, "--models",
                              "cloudbase/gemma-3-270m,deepseek/deepseek-chat", "--rpm", "60", "--json").stdout)
    assert shown == {"models": ["cloudbase/gemma-3-270m", "deepseek/deepseek-chat"], "concurrency": None,
                     "rpm": 60, "token_quota": None}
    listed = json.loads(cbgate(tmp_path, "key", "list", "--env", "team-p", "--json").stdout)[0]
    assert listed["models"] == shown["models"] and listed["limits"]["rpm"] == 60
    table = cbgate(tmp_path, "key", "list", "--env", "team-p").stdout
    assert "rpm=60" in table and "cloudbase/gemma-3-270m" in table
    cleared = json.loads(cbgate(tmp_path, "key", "set", "--env", "team-p", key_id, "--models", "*", "--rpm", "off",
                                "--json").stdout)
    assert cleared == {"models": None, "concurrency": None, "rpm": None, "token_quota": None}
    bad = cbgate(tmp_path, "key", "set", "--env", "team-p", key_id, "--models", "gemma", check=False)
    assert bad.returncode == 1 and "group/model" in bad.stderr
    assert cbgate(tmp_path, "key", "set", "--env", "team-p", key_id, "--rpm", "0", check=False).returncode == 2
    other = cbgate(tmp_path, "key", "set", "--env", "team-p", "key-nosuch", "--rpm", "5", check=False)
    assert other.returncode == 1 and "no key" in other.stderr
