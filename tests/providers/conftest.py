"""One gateway for the provider tests, fronting fake upstreams through an operator catalog:

- `up-openai`, `up-anthropic`: the fake, over each protocol (upstream model name differs from ours);
- `up-fallback`: a second fake first, then the main one; `up-dead`: a closed port, then the main fake;
  `up-slow-fallback`: the second fake with short timeouts, then the main one;
- `up-quick`: short first-byte and idle timeouts; `up-total`: a short total for non-streaming calls;
- `gemma-3-270m`: the embedded engine over the fake llama-server (tests/support/fake_llama.py).
"""
from __future__ import annotations

import pytest

from tests.support.catalog import write_catalog
from tests.support.fake_upstream import Counters, Reply, start_fake_upstream
from tests.support.gateway import free_port, start_in_thread

SECRET = "sk-group-secret-0123456789abcdef"  # the deployment's key: must reach the upstream
QUICK = {"connect": 1, "first_byte": 0.5, "idle": 0.5, "total": 5}


def upstream(kind: str, base_url: str, **extra) -> dict:
    return {"kind": kind, "base_url": base_url, "api_key_env": "TEST_UPSTREAM_SECRET", "model": "upstream-model",
            **extra}


@pytest.fixture(scope="session")
def fakes():
    main, other = start_fake_upstream(), start_fake_upstream()
    yield main, other
    main.stop()
    other.stop()


@pytest.fixture(scope="session")
def upstream_gateway(tmp_path_factory, fakes):
    main, other = fakes
    data_dir = tmp_path_factory.mktemp("providers") / "data"
    write_catalog(data_dir, [
        {"name": "up-openai", "deployments": [upstream("openai", main.url, name="openai-main")]},
        {"name": "up-anthropic", "deployments": [upstream("anthropic", main.root, name="anthropic-main")]},
        {"name": "up-fallback", "deployments": [upstream("openai", other.url, name="openai-other"),
                                                upstream("openai", main.url, name="openai-main")]},
        {"name": "up-dead", "deployments": [upstream("openai", f"http://127.0.0.1:{free_port()}/v1", name="dead"),
                                            upstream("openai", main.url, name="openai-main")]},
        {"name": "up-slow-fallback", "deployments": [
            upstream("openai", other.url, name="openai-other-quick", timeouts=QUICK),
            upstream("openai", main.url, name="openai-main")]},
        {"name": "up-quick", "deployments": [upstream("openai", main.url, name="openai-quick", timeouts=QUICK)]},
        {"name": "up-total", "deployments": [upstream("openai", main.url, name="openai-total",
                                                      timeouts={"first_byte": 5, "total": 0.5})]},
    ])
    gw = start_in_thread(data_dir, env={"TEST_UPSTREAM_SECRET": SECRET})
    yield gw
    gw.stop()


@pytest.fixture
def fake(fakes):
    """The main fake, reset for each test: empty script, default reply, no recorded requests or counts."""
    for each in fakes:
        each.server.queue.clear()
        each.server.requests.clear()
        each.server.stats = Counters()
        each.default = Reply()
        each.require_key = None
    yield fakes[0]


@pytest.fixture
def other_fake(fakes, fake):
    return fakes[1]
