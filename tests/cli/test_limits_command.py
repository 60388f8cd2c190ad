"""`cbgate limits set|show`, as scripts call it; a change reaches the running gateway."""
import os
import subprocess
import sys

from tests.support.chat import ask
from tests.support.postgres import store_env_for_tests


def limits(gateway, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cbgate", "limits", *args, "--data-dir", str(gateway.data_dir)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **store_env_for_tests()})


def table(output: str) -> dict[str, str]:
    head, *lines = output.strip().splitlines()
    assert head == "limit\tvalue"
    return dict(line.split("\t") for line in lines)


def test_show_defaults_then_set_some_and_switch_one_off(gateway):
    shown = limits(gateway, "show", "--env", gateway.env_id)
    assert shown.returncode == 0, shown.stderr
    assert table(shown.stdout) == {"concurrency": "5", "rpm": "off", "tpm": "off", "token_quota": "off"}

    changed = limits(gateway, "set", "--env", gateway.env_id, "--rpm", "2", "--token-quota", "100000")
    assert changed.returncode == 0, changed.stderr
    assert table(changed.stdout) == {"concurrency": "5", "rpm": "2", "tpm": "off", "token_quota": "100000"}
    off = limits(gateway, "set", "--env", gateway.env_id, "--concurrency", "off")
    assert table(off.stdout)["concurrency"] == "off" and table(off.stdout)["rpm"] == "2"  # the rest stay

    gateway.wait_for_snapshot()  # the running gateway picks the change up with its snapshot
    statuses = [gateway.chat(ask("hi")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_bad_values_and_unknown_envs_are_errors_not_tracebacks(gateway):
    bad = limits(gateway, "set", "--env", gateway.env_id, "--rpm", "-3")
    assert bad.returncode == 2 and "whole number" in bad.stderr
    missing = limits(gateway, "show", "--env", "env-nope")
    assert missing.returncode == 1 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
