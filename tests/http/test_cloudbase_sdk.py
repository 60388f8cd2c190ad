"""The official @cloudbase/ai SDK (installed from npm) through cbgate to a fake upstream: every named provider
of createModel, Hunyuan's image model, and streamText's usage against the ledger's record."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cbgate.core.vendors import VENDOR_GROUPS, VendorGroup
from tests.support.fake_upstream import start_fake_upstream
from tests.support.gateway import start_in_thread
from tests.support.ledger import wait_for_records

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SDK = JS_DIR / "node_modules" / "@cloudbase" / "ai"
SECRET = "sk-sdk-vendor-secret-1"
ENV = {"CBGATE_UPSTREAM_ALLOW": "127.0.0.1", "CBGATE_SECRET_KEY": "sdk-operator-key"}


def sdk_providers() -> list[str]:
    """The provider names of the SDK's MODELS map, read from the installed SDK itself."""
    source = (SDK / "src" / "models" / "index.ts").read_text()
    block = source[source.index("export const MODELS"):]
    block = block[:block.index("}")]
    return re.findall(r"^\s*'?([a-z0-9-]+)'?\s*:", block, re.M)


@pytest.fixture(scope="module")
def fake():
    fake = start_fake_upstream(require_key=SECRET)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def sdk_gateway(tmp_path_factory, fake):
    assert shutil.which("node") and SDK.is_dir(), "run scripts/setup first"
    saved = dict(VENDOR_GROUPS)
    for name in sdk_providers():  # each vendor's endpoint is the one thing replaced: the fake stands in for it
        VENDOR_GROUPS[name] = VendorGroup(name, fake.url, "openai", (f"{name}-model",))
    gw = start_in_thread(tmp_path_factory.mktemp("sdk") / "data", env=ENV)
    for name in sdk_providers():
        gw.admin.groups.set_group_key(gw.env_id, name, SECRET)
    gw.admin.groups.create_group(gw.env_id, "hunyuan-image", fake.url, ["hunyuan-image-v3.0-v1.0.4"], api_key=SECRET)
    gw.wait_for_snapshot()
    yield gw
    gw.stop()
    VENDOR_GROUPS.clear()
    VENDOR_GROUPS.update(saved)


def run_sdk(gw, spec: dict) -> dict:
    out = subprocess.run(["node", str(JS_DIR / "cloudbase_providers_check.mjs"), gw.url, gw.key, json.dumps(spec)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_sdk_knows_the_providers_we_serve():
    assert set(sdk_providers()) == {"hunyuan", "hunyuan-beta", "ark", "dashscope", "01-ai", "moonshot", "zhipu",
                                    "hunyuan-exp", "hunyuan-open", "deepseek"}
    assert set(sdk_providers()) <= set(VENDOR_GROUPS)  # each has a preset with its vendor's base URL


def test_every_named_provider_answers_text_and_stream_usage(sdk_gateway, fake):
    providers = sdk_providers()
    result = run_sdk(sdk_gateway, {"chat": {name: f"{name}-model" for name in providers}})
    for name in providers:
        got = result["chat"][name]
        assert "generateTextError" not in got and "streamTextError" not in got, (name, got)
        assert got["generateText"]["text"] == "Hello from the fake upstream", name
        assert got["streamText"]["text"] == "Hello from the fake upstream", name
        assert got["generateText"]["path"].startswith(f"/v1/ai/{name}"), name
        for answer in (got["generateText"], got["streamText"]):
            usage = answer["usage"]
            assert usage["completion_tokens"] > 0 and usage["total_tokens"] == \
                usage["prompt_tokens"] + usage["completion_tokens"], (name, usage)
    paths = {r.path for r in fake.chat_requests}
    assert paths == {"/v1/chat/completions"}  # every vendor path reaches the upstream as chat completions


def test_stream_text_usage_is_the_ledgers_record(sdk_gateway):
    env_id = sdk_gateway.admin.create_env()
    _, key = sdk_gateway.admin.create_key(env_id)
    sdk_gateway.admin.groups.set_group_key(env_id, "zhipu", SECRET)
    sdk_gateway.wait_for_snapshot()
    gw = type(sdk_gateway)(**{**sdk_gateway.__dict__, "key": key, "env_id": env_id})
    usage = run_sdk(gw, {"chat": {"zhipu": "zhipu-model"}})["chat"]["zhipu"]["streamText"]["usage"]
    [streamed] = wait_for_records(sdk_gateway.admin.store, env_id, 1, where=lambda r: r.stream)
    assert usage["prompt_tokens"] == streamed.prompt_tokens > 0
    assert usage["completion_tokens"] == streamed.completion_tokens > 0


def test_hunyuan_image_model_passes_its_parameters_through(sdk_gateway, fake):
    body = {"model": "hunyuan-image-v3.0-v1.0.4", "prompt": "一只猫", "size": "1024x1024", "seed": 42,
            "footnote": "cbgate", "revise": {"value": False}, "n": 1, "version": "v1.9",
            "negative_prompt": "dog", "style": "riman"}
    result = run_sdk(sdk_gateway, {"image": {"provider": "hunyuan-image", "body": body}})
    assert "imageError" not in result, result
    assert result["image"]["path"] == "/v1/ai/hunyuan-image/images/ar/generations"
    assert result["image"]["answer"]["data"][0]["url"].startswith("https://")
    sent = [r for r in fake.requests if r.path.endswith("/images/generations")][-1].json()
    assert sent == body  # Hunyuan's own parameters reach the upstream as sent
