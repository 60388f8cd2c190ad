"""A catalog the gateway cannot serve is reported by `cbgate serve` as one line before it starts serving,
not as a traceback from inside the server's startup."""
from __future__ import annotations

import os
import subprocess
import sys

from cbgate.config import load_settings
from cbgate.providers.registry import catalog_problems
from tests.support.gateway import free_port
from tests.support.postgres import store_env_for_tests

CATALOG = ('[[models]]\nname = "m"\n[[models.deployments]]\nkind = "openai"\nbase_url = "http://10.0.0.5/v1"\n'
           'api_key_env = "CBGATE_TEST_MISSING_KEY"\n')


def test_catalog_problems_name_the_model_and_what_is_wrong(tmp_path):
    (tmp_path / "cbgate.toml").write_text(CATALOG + 'timeouts = {total = -1}\n')
    assert catalog_problems(load_settings(str(tmp_path), env={})) == [
        "model m: environment variable CBGATE_TEST_MISSING_KEY (api_key_env) is not set"]
    assert catalog_problems(load_settings(str(tmp_path), env={"CBGATE_TEST_MISSING_KEY": "sk"})) == [
        "model m: timeouts must be positive numbers of seconds, at most 86400"]


def test_serve_refuses_a_catalog_it_cannot_serve_in_one_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "cbgate.toml").write_text(CATALOG)
    env = {k: v for k, v in os.environ.items() if k != "CBGATE_TEST_MISSING_KEY"}
    done = subprocess.run([sys.executable, "-m", "cbgate", "serve", "--data-dir", str(data), "--port",
                           str(free_port())], capture_output=True, text=True, timeout=120,
                          env={**env, **store_env_for_tests()})
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "CBGATE_TEST_MISSING_KEY" in done.stderr, done.stderr
    assert len([line for line in done.stderr.splitlines() if "CBGATE_TEST_MISSING_KEY" in line]) == 1
