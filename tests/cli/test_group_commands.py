"""`cbgate group ...` and `cbgate model ... --group` as scripts run them: output, exit codes, clear errors,
the creation check against a real (fake) upstream, and secrets that never show up again."""
from __future__ import annotations

import json
import stat

import pytest

from tests.cli.test_tenant_commands import cbgate, last_line
from tests.support.fake_upstream import start_fake_upstream

SECRET = "sk-cli-canary-5e1d7c9a2b"
LOOPBACK_ALLOWED = {"CBGATE_UPSTREAM_ALLOW": "127.0.0.1"}  # the CLI's check obeys the egress policy too


@pytest.fixture(scope="module")
def fake():
    fake = start_fake_upstream(require_key=SECRET)
    yield fake
    fake.stop()


@pytest.fixture
def env(tmp_path):
    return last_line(cbgate(tmp_path, "env", "create", "team-a"))


def groups(data_dir, env_id) -> dict[str, list[str]]:
    lines = cbgate(data_dir, "group", "list", "--env", env_id).stdout.strip().splitlines()
    assert lines[0].split("\t") == ["name", "kind", "protocol", "base_url", "status", "key", "models", "reads"]
    return {line.split("\t")[0]: line.split("\t") for line in lines[1:]}


def test_create_checks_the_upstream_with_the_secret(tmp_path, env, fake):
    refused = cbgate(tmp_path, "group", "create", "--env", env, "mine", "--base-url", fake.url,
                     "--api-key", "sk-wrong", "--models", "a,b", check=False, env=LOOPBACK_ALLOWED)
    assert refused.returncode == 1
    assert "did not answer" in refused.stderr and "401" in refused.stderr and "--no-check" in refused.stderr
    assert "sk-wrong" not in refused.stderr and "mine" not in groups(tmp_path, env)

    created = cbgate(tmp_path, "group", "create", "--env", env, "mine", "--base-url", fake.url,
                     "--api-key", SECRET, "--models", "a,b", env=LOOPBACK_ALLOWED)
    assert "created group mine" in created.stdout and SECRET not in created.stdout
    assert groups(tmp_path, env)["mine"][1:] == ["custom", "openai", fake.url, "enabled", "set", "a,b", "as sent"]


def test_no_check_creates_a_group_for_a_server_not_up_yet(tmp_path, env):
    down = "http://127.0.0.1:9/v1"
    assert cbgate(tmp_path, "group", "create", "--env", env, "later", "--base-url", down, "--models", "x",
                  check=False).returncode == 1
    cbgate(tmp_path, "group", "create", "--env", env, "later", "--base-url", down, "--models", "x",
           "--protocol", "anthropic", "--no-check")
    assert groups(tmp_path, env)["later"][1:] == ["custom", "anthropic", down, "enabled", "not set", "x", "as sent"]


@pytest.mark.parametrize("name, extra, message", [
    ("cloudbase-extra", [], "may not start with 'cloudbase'"),
    ("hunyuan", [], "built-in group"),
    ("Bad Name", [], "lower-case letters"),
    ("ok", ["--models", " , "], "at least one model"),
    ("ok", ["--base-url", "ftp://host/v1"], "http:// or https://"),
])
def test_create_validates(tmp_path, env, name, extra, message):
    args = {"--base-url": "http://127.0.0.1:9/v1", "--models": "a"}
    args.update(dict(zip(extra[::2], extra[1::2])))
    flat = [x for pair in args.items() for x in pair]
    result = cbgate(tmp_path, "group", "create", "--env", env, name, *flat, "--no-check", check=False)
    assert result.returncode == 1 and message in result.stderr


def test_protocol_must_be_openai_or_anthropic(tmp_path, env):
    result = cbgate(tmp_path, "group", "create", "--env", env, "g", "--base-url", "http://h/v1", "--models", "a",
                    "--protocol", "grpc", "--no-check", check=False)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_secrets_are_encrypted_at_rest_and_never_printed(tmp_path, env, fake):
    cbgate(tmp_path, "group", "create", "--env", env, "mine", "--base-url", fake.url, "--api-key", SECRET,
           "--models", "a", env=LOOPBACK_ALLOWED)
    cbgate(tmp_path, "group", "set-key", "--env", env, "hunyuan", "sk-hunyuan-canary-8d2f")
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("cbgate.db*"))
    assert SECRET.encode() not in stored and b"sk-hunyuan-canary-8d2f" not in stored
    listing = cbgate(tmp_path, "group", "list", "--env", env).stdout
    assert SECRET not in listing and "sk-hunyuan-canary" not in listing
    assert groups(tmp_path, env)["hunyuan"][5] == "set" and groups(tmp_path, env)["deepseek"][5] == "missing"
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_builtin_vendor_groups_are_listed_with_their_models(tmp_path, env):
    listed = groups(tmp_path, env)
    assert listed["hunyuan"][1:4] == ["built-in", "openai", "https://api.hunyuan.cloud.tencent.com/v1"]
    assert "hunyuan-turbos-latest" in listed["hunyuan"][6].split(",")
    assert listed["deepseek"][6].split(",") == ["deepseek-chat", "deepseek-reasoner"]


def test_switches_and_model_commands_for_every_group(tmp_path, env):
    cbgate(tmp_path, "group", "create", "--env", env, "mine", "--base-url", "http://127.0.0.1:9/v1",
           "--models", "a,b", "--no-check")
    cbgate(tmp_path, "group", "disable", "--env", env, "mine")
    assert groups(tmp_path, env)["mine"][4] == "disabled"
    cbgate(tmp_path, "group", "enable", "--env", env, "mine")
    assert groups(tmp_path, env)["mine"][4] == "enabled"

    cbgate(tmp_path, "model", "disable", "--env", env, "--group", "mine", "b")
    assert cbgate(tmp_path, "model", "list", "--env", env, "--group", "mine").stdout.split("\n")[:3] == [
        "group\tmodel\tstatus", "mine\ta\tenabled", "mine\tb\tdisabled"]
    cbgate(tmp_path, "model", "disable", "--env", env, "--group", "deepseek", "deepseek-reasoner")
    deepseek = cbgate(tmp_path, "model", "list", "--env", env, "--group", "deepseek").stdout
    assert "deepseek\tdeepseek-chat\tneeds key" in deepseek and "deepseek\tdeepseek-reasoner\tdisabled" in deepseek
    every = cbgate(tmp_path, "model", "list", "--env", env).stdout
    assert "cloudbase\tsmollm2-135m-instruct\tenabled" in every and "mine\tb\tdisabled" in every

    missing = cbgate(tmp_path, "model", "enable", "--env", env, "--group", "mine", "zzz", check=False)
    assert missing.returncode == 1 and "not in group" in missing.stderr
    unknown = cbgate(tmp_path, "model", "list", "--env", env, "--group", "nope", check=False)
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr


def test_delete(tmp_path, env):
    cbgate(tmp_path, "group", "create", "--env", env, "mine", "--base-url", "http://127.0.0.1:9/v1",
           "--models", "a", "--no-check")
    assert "deleted group mine" in cbgate(tmp_path, "group", "delete", "--env", env, "mine").stdout
    assert "mine" not in groups(tmp_path, env)
    assert "mine" not in cbgate(tmp_path, "model", "list", "--env", env).stdout
    again = cbgate(tmp_path, "group", "delete", "--env", env, "mine", check=False)
    assert again.returncode == 1 and "does not exist" in again.stderr
    builtin = cbgate(tmp_path, "group", "delete", "--env", env, "deepseek", check=False)
    assert builtin.returncode == 1 and "cannot be deleted" in builtin.stderr


def test_group_timeouts_are_validated(tmp_path):
    cbgate(tmp_path, "env", "create", "team-a")
    base = ["group", "create", "--env", "team-a", "t1", "--base-url", "http://10.0.0.5:8000/v1",
            "--models", "m", "--no-check"]
    bad = cbgate(tmp_path, *base, "--timeouts", "connect=fast", check=False)
    assert bad.returncode == 1 and "connect=fast" in bad.stderr and "Traceback" not in bad.stderr
    unknown = cbgate(tmp_path, *base, "--timeouts", "forever=5", check=False)
    assert unknown.returncode == 1 and "unknown timeouts" in unknown.stderr
    cbgate(tmp_path, *base, "--timeouts", "connect=5,total=90")
    assert cbgate(tmp_path, "group", "set-timeouts", "--env", "team-a", "t1", "default").returncode == 0
    negative = cbgate(tmp_path, "group", "set-timeouts", "--env", "team-a", "t1", "total=-1", check=False)
    assert negative.returncode == 1 and "positive" in negative.stderr


def group_json(data_dir, env_id, name) -> dict:
    listed = json.loads(cbgate(data_dir, "group", "list", "--env", env_id, "--json").stdout)
    return next(g for g in listed if g["name"] == name)


def test_what_a_group_reads_round_trips(tmp_path, env):
    cbgate(tmp_path, "group", "create", "--env", env, "vl", "--base-url", "http://127.0.0.1:9/v1", "--models", "m",
           "--no-vision", "--audio-input", "--no-check")
    made = group_json(tmp_path, env, "vl")
    assert (made["vision"], made["audio_input"]) == (False, True)
    assert groups(tmp_path, env)["vl"][7] == "no vision,audio_input"

    said = cbgate(tmp_path, "group", "set-capabilities", "--env", env, "vl", "--vision")
    assert "vision yes" in said.stdout
    assert (group_json(tmp_path, env, "vl")["vision"], group_json(tmp_path, env, "vl")["audio_input"]) == (True, True)
    cbgate(tmp_path, "group", "set-capabilities", "--env", env, "vl", "--undeclared")
    assert (group_json(tmp_path, env, "vl")["vision"], group_json(tmp_path, env, "vl")["audio_input"]) == (None, None)
    assert groups(tmp_path, env)["vl"][7] == "as sent"
    listed = groups(tmp_path, env)
    assert listed["cloudbase"][7] == "per deployment" and listed["deepseek"][7] == "as sent"
    assert "vision" not in group_json(tmp_path, env, "cloudbase")
    assert group_json(tmp_path, env, "deepseek")["vision"] is None


def test_set_capabilities_says_what_is_missing(tmp_path, env):
    nothing = cbgate(tmp_path, "group", "set-capabilities", "--env", env, "deepseek", check=False)
    assert nothing.returncode == 1 and "--vision" in nothing.stderr
    vendor = cbgate(tmp_path, "group", "set-capabilities", "--env", env, "deepseek", "--vision", check=False)
    assert vendor.returncode == 1 and "built-in group" in vendor.stderr and "custom group" in vendor.stderr
