"""One gateway for the API-surface tests (Messages, Responses, images), over the scripted fake engine and a
fake upstream speaking both protocols, through the operator's catalog:

- `gemma-3-270m`: the embedded engine (scripted: it answers "echo: <last user text>");
- `up-openai` / `up-anthropic`: the fake over each protocol; `up-small`: the fake with a 300-token context;
- `up-image`: an image model on the fake's OpenAI-compatible side;
- `up-vision` (declares vision and audio), `up-text` (declares neither), `up-mixed` (a text-only deployment,
  upstream model `text-model`, then one with vision, `vision-model`), `up-prefer` (one declaring nothing, then
  one with vision): what a deployment reads besides text.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.support.catalog import write_catalog
from tests.support.fake_upstream import FakeUpstream, Reply, start_fake_upstream
from tests.support.gateway import Gateway, start_in_thread

SECRET = "sk-surfaces-upstream-secret-42"


def _upstream(kind: str, base_url: str, name: str, **extra) -> dict:
    return {"kind": kind, "base_url": base_url, "api_key_env": "TEST_SURFACES_SECRET", "name": name,
            "model": "upstream-model", **extra}


@dataclass
class Surfaces:
    gw: Gateway
    fake: FakeUpstream
    other_key: str  # a server key of another environment

    def base(self, group: str = "cloudbase") -> str:
        return f"{self.gw.url}/v1/ai/{group}"


@pytest.fixture(scope="session")
def surfaces(tmp_path_factory):
    fake = start_fake_upstream(require_key=SECRET)
    data_dir = tmp_path_factory.mktemp("surfaces") / "data"
    write_catalog(data_dir, [
        {"name": "up-openai", "deployments": [_upstream("openai", fake.url, "openai-main", context_window=100_000)]},
        {"name": "up-anthropic", "deployments": [_upstream("anthropic", fake.root, "anthropic-main")]},
        {"name": "up-small", "deployments": [_upstream("openai", fake.url, "openai-small", context_window=300)]},
        {"name": "up-image", "deployments": [_upstream("openai", fake.url, "images-main")]},
        {"name": "up-vision", "deployments": [_upstream("openai", fake.url, "vision-main", vision=True,
                                                        audio_input=True)]},
        {"name": "up-text", "deployments": [_upstream("openai", fake.url, "text-main", vision=False,
                                                      audio_input=False)]},
        {"name": "up-mixed", "deployments": [
            _upstream("openai", fake.url, "mixed-text", vision=False, model="text-model"),
            _upstream("openai", fake.url, "mixed-vision", vision=True, model="vision-model")]},
        {"name": "up-prefer", "deployments": [
            _upstream("openai", fake.url, "prefer-undeclared", model="text-model"),
            _upstream("openai", fake.url, "prefer-vision", vision=True, model="vision-model")]},
    ])
    gw = start_in_thread(data_dir, env={"TEST_SURFACES_SECRET": SECRET, "CBGATE_UPSTREAM_ALLOW": "127.0.0.1",
                                        "CBGATE_SECRET_KEY": "surfaces-operator-key"})
    other_env = gw.admin.create_env()
    _, other_key = gw.admin.create_key(other_env)
    gw.wait_for_snapshot()  # the gateway has seen the new key
    yield Surfaces(gw, fake, other_key)
    gw.stop()
    fake.stop()


@pytest.fixture
def fake(surfaces):
    surfaces.fake.server.queue.clear()
    surfaces.fake.server.requests.clear()
    surfaces.fake.default = Reply()
    return surfaces.fake
