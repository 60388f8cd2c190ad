"""The README's "On a vLLM or SGLang cluster" examples, run as they stand against a fake OpenAI-compatible
server in place of the cluster: the catalog entry through the cloudbase group, then the admin API call that adds
a group and the chat call that uses it."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.admin_plane import make_cast
from tests.support.fake_upstream import start_fake_upstream
from tests.support.gateway import start_in_thread

README = Path(__file__).resolve().parents[2] / "README.md"
VLLM_KEY, SGLANG_KEY = "sk-vllm-cluster-7f1c", "sk-sglang-cluster-02be"


def example_blocks() -> dict[str, str]:
    section = README.read_text().split("### On a vLLM or SGLang cluster", 1)[1].split("\n## ", 1)[0]
    return {lang: body for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, re.S)}


@pytest.fixture
def fake():
    fake = start_fake_upstream()
    yield fake
    fake.stop()


def test_the_catalog_example_serves_a_cluster_model(tmp_path, fake):
    fake.require_key = VLLM_KEY
    toml = example_blocks()["toml"].replace("http://vllm.internal:8000/v1", fake.url)
    assert fake.url in toml, "the README example no longer names http://vllm.internal:8000/v1"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "cbgate.toml").write_text(toml)
    gw = start_in_thread(data_dir, env={"VLLM_API_KEY": VLLM_KEY}, overrides={})
    try:
        answer = gw.chat({"model": "qwen2.5-7b", "messages": [{"role": "user", "content": "Hello"}]})
        assert answer.status_code == 200, answer.text
        sent = fake.chat_requests[-1]
        assert sent.json()["model"] == "Qwen/Qwen2.5-7B-Instruct"
        assert sent.headers["authorization"] == f"Bearer {VLLM_KEY}" and gw.key not in str(sent.headers)
    finally:
        gw.stop()


def test_the_admin_api_example_adds_a_group_and_chats(tmp_path, fake):
    fake.require_key = SGLANG_KEY
    gw = start_in_thread(tmp_path / "data", env={"CBGATE_UPSTREAM_ALLOW": "127.0.0.1"})
    try:
        cast = make_cast(gw)
        script = example_blocks()["bash"].replace("http://sglang.internal:30000/v1", fake.url)
        assert fake.url in script
        env = {**os.environ, "CBGATE": gw.url, "ENV_ID": gw.env_id, "CBGATE_TOKEN": cast.operator,
               "CBGATE_API_KEY": gw.key, "SGLANG_API_KEY": SGLANG_KEY}
        done = subprocess.run(["bash", "-c", script.replace("curl ", "curl -sS --fail-with-body ")], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        made, answer = _two_json(done.stdout)  # the two calls' answers, one after the other
        assert made["name"] == "sglang" and made["has_key"] is True and SGLANG_KEY not in done.stdout
        assert answer["choices"][0]["message"]["content"]
        assert fake.chat_requests[-1].headers["authorization"] == f"Bearer {SGLANG_KEY}"
    finally:
        gw.stop()


def _two_json(text: str) -> tuple[dict, dict]:
    decoder = json.JSONDecoder()
    first, end = decoder.raw_decode(text)
    second, _ = decoder.raw_decode(text[end:].lstrip())
    return first, second
