"""A gateway whose catalog fronts a scripted upstream (raw answers, malformed ones included), over the
OpenAI protocol (`up-openai`) and the Anthropic one (`up-anthropic`)."""
from __future__ import annotations

import pytest

from tests.support.catalog import write_catalog
from tests.support.gateway import start_in_thread
from tests.support.scripted_upstream import ScriptedUpstream

UPSTREAM_SECRET = "sk-upstream-canary-7Qm2xW9pLk4vRt8s"


@pytest.fixture(scope="session")
def scripted():
    upstream = ScriptedUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="session")
def scripted_gateway(tmp_path_factory, scripted):
    data_dir = tmp_path_factory.mktemp("security") / "data"
    deployment = {"api_key_env": "TEST_UPSTREAM_SECRET", "model": "upstream-model",
                  "timeouts": {"connect": 2, "first_byte": 5, "idle": 5, "total": 10}}
    write_catalog(data_dir, [
        {"name": "up-openai", "deployments": [{"kind": "openai", "base_url": scripted.url, "name": "scripted-openai",
                                               **deployment}]},
        {"name": "up-anthropic", "deployments": [{"kind": "anthropic", "base_url": scripted.url,
                                                  "name": "scripted-anthropic", **deployment}]},
    ])
    gw = start_in_thread(data_dir, env={"TEST_UPSTREAM_SECRET": UPSTREAM_SECRET})
    yield gw
    gw.stop()


@pytest.fixture
def upstream(scripted):
    scripted.answers.clear()
    yield scripted
    scripted.answers.clear()
