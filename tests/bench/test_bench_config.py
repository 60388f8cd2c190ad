"""The benchmark's config builder makes a catalog the gateway accepts and a fake upstream nginx accepts."""
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from cbgate.config import load_settings

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench_configs():
    spec = importlib.util.spec_from_file_location("bench_configs", BENCH / "configs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_catalog_fronts_the_fake_upstream_with_openai_deployments(tmp_path):
    configs = load_bench_configs()
    (tmp_path / "cbgate.toml").write_text(configs.cbgate_toml(18099))
    settings = load_settings(str(tmp_path), env={})
    assert settings.default_models == [configs.MODEL_JSON, configs.MODEL_SSE]
    for model in settings.catalog:
        (deployment,) = model.deployments
        assert deployment.kind == "openai"
        assert deployment.options["base_url"].startswith("http://127.0.0.1:18099/")
        assert deployment.options["api_key_env"] == configs.UPSTREAM_KEY_ENV


def test_streamed_body_has_fourteen_events_and_ends_with_done():
    configs = load_bench_configs()
    events = configs.stream_body().split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    assert len(events) - 2 == configs.STREAM_EVENTS
    assert b'"usage"' in events[-3]


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_rendered_fake_upstream_config(tmp_path):
    configs = load_bench_configs()
    conf = configs.write_fake_upstream(tmp_path, 18099)
    check = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
