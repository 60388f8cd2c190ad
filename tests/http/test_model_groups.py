"""Model groups through real HTTP: a custom group fronting the fake upstream, a vendor group's own key,
every refusal (unknown, not in group, switched off, no key), the egress policy, and CLI changes seen live."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from cbgate.core.vendors import VENDOR_GROUPS, VendorGroup
from tests.support.fake_upstream import Reply, start_fake_upstream
from tests.support.gateway import start_in_thread
from tests.support.postgres import store_env_for_tests
from tests.support.wait import elapsed_until

GROUP_SECRET = "sk-canary-group-7f3a9c0d1e2b"
OPERATOR_KEY = "operator-passphrase-for-tests"
ENV = {"CBGATE_UPSTREAM_ALLOW": "127.0.0.1", "CBGATE_SECRET_KEY": OPERATOR_KEY}


@pytest.fixture(scope="module")
def fake():
    fake = start_fake_upstream(require_key=GROUP_SECRET)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, fake):
    gw = start_in_thread(tmp_path_factory.mktemp("groups") / "data", env=ENV)
    gw.admin.groups.create_group(gw.env_id, "mine", fake.url, ["m-one", "m-two"], api_key=GROUP_SECRET)
    wait_for(lambda: chat(gw, "mine", "m-one").status_code != 404)  # the gateway has reloaded its snapshot
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def _reset(fake):
    fake.server.queue.clear()
    fake.server.requests.clear()
    fake.default, fake.require_key = Reply(), GROUP_SECRET


def chat(gw, group: str, model: str, **extra) -> requests.Response:
    return gw.chat({"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}, group=group)


def wait_for(predicate) -> float:
    """Until the gateway shows the change; returns how long that took."""
    return elapsed_until(predicate, "the gateway to show the change")


def test_custom_group_calls_its_upstream_with_its_own_secret(gw, fake):
    reply = chat(gw, "mine", "m-one")
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "Hello from the fake upstream"
    sent = fake.chat_requests[-1]
    assert sent.headers["authorization"] == f"Bearer {GROUP_SECRET}"
    assert gw.key not in repr(sent.headers) and sent.json()["model"] == "m-one"


def test_custom_group_streams(gw, fake):
    fake.default = Reply(events=3)
    reply = chat(gw, "mine", "m-two", stream=True, stream_options={"include_usage": True})
    assert reply.status_code == 200
    text = reply.text
    assert "t0 " in text and "t2 " in text and text.rstrip().endswith("data: [DONE]")


def test_anthropic_protocol_group(gw, fake):
    gw.admin.groups.create_group(gw.env_id, "claude", fake.root, ["claude-x"], api_key=GROUP_SECRET,
                                 protocol="anthropic")
    wait_for(lambda: chat(gw, "claude", "claude-x").status_code != 404)
    reply = chat(gw, "claude", "claude-x")
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "Hello from the fake upstream"
    sent = fake.chat_requests[-1]
    assert sent.path == "/v1/messages" and sent.headers["x-api-key"] == GROUP_SECRET


def test_models_listing_shows_the_groups_enabled_models(gw):
    gw.admin.set_model(gw.env_id, "mine", "m-two", False)
    try:
        wait_for(lambda: chat(gw, "mine", "m-two").status_code == 403)
        listing = requests.get(f"{gw.url}/v1/ai/mine/v1/models", headers=gw.headers(), timeout=10).json()
        assert [m["id"] for m in listing["data"]] == ["m-one"]
    finally:
        gw.admin.set_model(gw.env_id, "mine", "m-two", True)


@pytest.mark.parametrize("group, model, status, code", [
    ("nosuch", "m-one", 404, "AI_MODEL_NOT_FOUND"),
    ("mine", "not-in-group", 400, "AI_MODEL_NOT_SUPPORTED"),
    ("hunyuan", "hunyuan-lite", 400, "AI_MODEL_CONFIG_MISSING"),
    ("deepseek", "deepseek-chat", 400, "AI_MODEL_CONFIG_MISSING"),
    ("deepseek", "gpt-4o", 400, "AI_MODEL_NOT_SUPPORTED"),
])
def test_refusals(gw, fake, group, model, status, code):
    for stream in (False, True):
        reply = chat(gw, group, model, stream=stream)
        assert (reply.status_code, reply.json()["code"]) == (status, code)
    assert not fake.chat_requests


def test_switching_a_group_or_model_off_refuses_it(gw, fake):
    gw.admin.groups.set_group_enabled(gw.env_id, "mine", False)
    try:
        wait_for(lambda: chat(gw, "mine", "m-one").status_code == 403)
        assert chat(gw, "mine", "m-one").json()["code"] == "AI_MODEL_DISABLED"
        listing = requests.get(f"{gw.url}/v1/ai/mine/models", headers=gw.headers(), timeout=10).json()
        assert listing["data"] == []
    finally:
        gw.admin.groups.set_group_enabled(gw.env_id, "mine", True)
    wait_for(lambda: chat(gw, "mine", "m-one").status_code == 200)


def test_a_new_secret_is_used_on_the_next_call(gw, fake):
    fake.require_key = "sk-rotated-secret"
    assert chat(gw, "mine", "m-one").json()["code"] == "AI_MODEL_REQUEST_FAILED"
    gw.admin.groups.set_group_key(gw.env_id, "mine", "sk-rotated-secret")
    try:
        wait_for(lambda: chat(gw, "mine", "m-one").status_code == 200)
        assert fake.chat_requests[-1].headers["authorization"] == "Bearer sk-rotated-secret"
    finally:
        gw.admin.groups.set_group_key(gw.env_id, "mine", GROUP_SECRET)


def test_vendor_group_uses_the_envs_own_key(gw, fake, monkeypatch):
    # the vendor's endpoint is the one thing replaced: the fake stands in for the vendor's network
    monkeypatch.setitem(VENDOR_GROUPS, "deepseek", VendorGroup("deepseek", fake.url, "openai", ("deepseek-chat",)))
    fake.require_key = "sk-env-deepseek-key"
    env_id = gw.admin.create_env()  # an env of its own: the shared one keeps deepseek without a key
    _, key = gw.admin.create_key(env_id)
    gw.admin.groups.set_group_key(env_id, "deepseek", "sk-env-deepseek-key")
    body = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}
    wait_for(lambda: gw.chat(body, key=key, group="deepseek").status_code == 200)
    assert fake.chat_requests[-1].headers["authorization"] == "Bearer sk-env-deepseek-key"
    assert chat(gw, "deepseek", "deepseek-chat").json()["code"] == "AI_MODEL_CONFIG_MISSING"  # other envs: no key
    listing = requests.get(f"{gw.url}/v1/ai/deepseek/v1/models", headers=gw.headers(key), timeout=10).json()
    assert [m["id"] for m in listing["data"]] == ["deepseek-chat"]


@pytest.mark.timing
def test_cli_changes_reach_a_running_gateway_within_seconds(gw):
    env = {**os.environ, **store_env_for_tests(), **ENV}

    def cbgate(*args):
        done = subprocess.run([sys.executable, "-m", "cbgate", *args, "--data-dir", str(gw.data_dir)],
                              capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr

    try:
        cbgate("group", "disable", "--env", gw.env_id, "mine")
        assert wait_for(lambda: chat(gw, "mine", "m-one").status_code == 403) < 6  # promised: 2 s
        cbgate("group", "enable", "--env", gw.env_id, "mine")
        wait_for(lambda: chat(gw, "mine", "m-one").status_code == 200)
        cbgate("model", "disable", "--env", gw.env_id, "--group", "mine", "m-one")
        assert wait_for(lambda: chat(gw, "mine", "m-one").status_code == 403) < 6
    finally:
        cbgate("model", "enable", "--env", gw.env_id, "--group", "mine", "m-one")


def test_loopback_upstream_is_refused_unless_the_operator_allows_it(tmp_path, fake):
    gw = start_in_thread(tmp_path / "data", env={"CBGATE_SECRET_KEY": OPERATOR_KEY})  # no CBGATE_UPSTREAM_ALLOW
    try:
        gw.admin.groups.create_group(gw.env_id, "inside", fake.url, ["m-one"], api_key=GROUP_SECRET, check=False)
        wait_for(lambda: chat(gw, "inside", "m-one").status_code != 404)
        reply = chat(gw, "inside", "m-one")
        assert (reply.status_code, reply.json()["code"]) == (502, "AI_MODEL_REQUEST_FAILED")
        assert "CBGATE_UPSTREAM_ALLOW" in reply.json()["message"] and GROUP_SECRET not in reply.text
        assert not fake.chat_requests  # refused before connecting
    finally:
        gw.stop()


def test_a_groups_own_timeouts_bound_its_calls(gw, fake):
    gw.admin.groups.create_group(gw.env_id, "slowpoke", fake.url, ["m-slow"], api_key=GROUP_SECRET,
                          timeouts={"total": 0.5, "first_byte": 0.5})
    wait_for(lambda: chat(gw, "slowpoke", "m-slow").status_code != 404)
    fake.default = Reply(first_byte_delay=2)
    reply = chat(gw, "slowpoke", "m-slow")  # the default timeouts (60 s) would have waited for the answer
    assert reply.status_code == 504 and reply.json()["code"] == "AI_MODEL_REQUEST_FAILED"
    gw.admin.groups.set_group_timeouts(gw.env_id, "slowpoke", {"total": 5, "first_byte": 5})
    gw.wait_for_snapshot()
    assert chat(gw, "slowpoke", "m-slow").status_code == 200
