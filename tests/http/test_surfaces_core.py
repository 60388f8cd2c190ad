"""Every surface rides the chat completions core: admission (concurrency, quota), the model switch, what a
publishable key may do, the ledger and /metrics; each in an environment of its own on the shared gateway."""
from __future__ import annotations

import anthropic
import openai
import pytest
import requests

from tests.support.fake_upstream import Reply
from tests.support.ledger import wait_for_records
from tests.support.wait import wait_until

HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def tenant(surfaces):
    """A fresh environment with a server key, seen by the gateway."""
    admin = surfaces.gw.admin
    env_id = admin.create_env()
    _, key = admin.create_key(env_id)
    surfaces.gw.wait_for_snapshot()
    return env_id, key


def clients(surfaces, key: str):
    return (anthropic.Anthropic(base_url=surfaces.base(), auth_token=key, max_retries=0),
            openai.OpenAI(base_url=surfaces.base(), api_key=key, max_retries=0))


def test_concurrency_is_shared_by_every_surface(surfaces, fake, tenant):
    env_id, key = tenant
    claude, oai = clients(surfaces, key)
    surfaces.gw.admin.set_env_limits(env_id, {"concurrency": 1})
    surfaces.gw.wait_for_snapshot()
    fake.default = Reply(events=50, chunk_delay=0.05)
    refused = []

    def held_then_refused() -> bool:
        with claude.messages.stream(model="up-openai", max_tokens=64, messages=HELLO) as stream:
            next(iter(stream))  # admitted and streaming
            try:
                oai.responses.create(model="up-openai", input="me too")
            except openai.RateLimitError as exc:
                refused.append(exc.body["code"])
                with pytest.raises(openai.RateLimitError):
                    oai.images.generate(model="up-image", prompt="a kite")
                return True
            return False

    assert held_then_refused()
    assert refused == ["EXCEED_CONCURRENT_REQUEST_LIMIT"]
    fake.default = Reply()
    wait_until(lambda: succeeds(lambda: oai.responses.create(model="up-openai", input="now")),
               "the slot to come back")


def succeeds(call) -> bool:
    try:
        call()
    except openai.RateLimitError:
        return False
    return True


def test_quota_used_up_is_refused_in_each_envelope(surfaces, fake, tenant):
    env_id, key = tenant
    claude, oai = clients(surfaces, key)
    surfaces.gw.admin.set_env_limits(env_id, {"token_quota": 1})
    surfaces.gw.wait_for_snapshot()

    def refused() -> bool:
        try:
            claude.messages.create(model="up-openai", max_tokens=16, messages=HELLO)
        except anthropic.RateLimitError as exc:
            assert exc.body["type"] == "error" and exc.body["error"]["type"] == "rate_limit_error"
            assert exc.body["code"] == "EXCEED_TOKEN_QUOTA_LIMIT"
            return True
        return False

    assert refused()
    with pytest.raises(openai.RateLimitError) as caught:
        oai.responses.create(model="up-openai", input="more")
    assert caught.value.body["code"] == "EXCEED_TOKEN_QUOTA_LIMIT"


def test_the_model_switch_applies(surfaces, fake, tenant):
    env_id, key = tenant
    claude, oai = clients(surfaces, key)
    surfaces.gw.admin.set_model(env_id, "cloudbase", "up-openai", False)

    def disabled() -> bool:
        try:
            claude.messages.create(model="up-openai", max_tokens=16, messages=HELLO)
        except anthropic.PermissionDeniedError as exc:
            return exc.body["code"] == "AI_MODEL_DISABLED"
        return False

    surfaces.gw.wait_for_snapshot()
    assert disabled()
    with pytest.raises(openai.PermissionDeniedError):
        oai.responses.create(model="up-openai", input="x")


def test_a_publishable_key_gets_unstored_answers_only(surfaces, fake, tenant):
    env_id, key = tenant
    _, publishable = surfaces.gw.admin.create_key(env_id, kind="publishable")
    _, browser = clients(surfaces, publishable)
    surfaces.gw.wait_for_snapshot()
    answer = browser.responses.create(model="up-openai", input="hi")
    assert answer.store is False and answer.output_text
    _, server = clients(surfaces, key)
    stored = server.responses.create(model="up-openai", input="server side")
    with pytest.raises(openai.PermissionDeniedError):
        browser.responses.retrieve(stored.id)
    with pytest.raises(openai.PermissionDeniedError):
        browser.responses.create(model="up-openai", input="go on", previous_response_id=stored.id)
    with pytest.raises(openai.PermissionDeniedError):
        browser.images.generate(model="up-image", prompt="a kite")


def test_usage_by_surface_and_metrics(surfaces, fake, tenant):
    env_id, key = tenant
    claude, oai = clients(surfaces, key)
    claude.messages.create(model="up-openai", max_tokens=16, messages=HELLO)
    oai.responses.create(model="up-openai", input="hi")
    oai.chat.completions.create(model="up-openai", messages=HELLO)
    oai.images.generate(model="up-image", prompt="a kite", n=3)
    admin = surfaces.gw.admin
    wait_for_records(admin.store, env_id, 4)
    rows = {row["surface"]: row for row in admin.usage_summary(env_id, by="surface")["rows"]}
    assert set(rows) == {"chat", "messages", "responses", "images"}
    assert all(rows[s]["requests"] == 1 and rows[s]["total_tokens"] > 0 for s in ("chat", "messages", "responses"))
    assert rows["images"]["images"] == 3
    _, token = admin.create_operator_token()
    surfaces.gw.wait_for_snapshot()  # the gateway has seen the new token
    text = requests.get(surfaces.gw.url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
    line = f'cbgate_requests_total{{env="{env_id}",group="cloudbase",model="up-openai",code="OK"}} 3'
    assert line in text


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_custom_groups_of_both_protocols_serve_every_surface(surfaces, fake, tenant, protocol):
    env_id, key = tenant
    base = fake.url if protocol == "openai" else fake.root
    surfaces.gw.admin.groups.create_group(env_id, f"my-{protocol}", base, ["their-model"],
                                          api_key="sk-surfaces-upstream-secret-42",
                                   protocol=protocol, check=False)
    surfaces.gw.wait_for_snapshot()
    claude = anthropic.Anthropic(base_url=surfaces.base(f"my-{protocol}"), auth_token=key, max_retries=0)
    oai = openai.OpenAI(base_url=surfaces.base(f"my-{protocol}"), api_key=key, max_retries=0)
    assert claude.messages.create(model="their-model", max_tokens=16, messages=HELLO).content
    sent = fake.chat_requests[-1]
    assert sent.path.endswith("/messages" if protocol == "anthropic" else "/chat/completions")
    assert sent.json()["model"] == "their-model"
    assert oai.responses.create(model="their-model", input="hi").output_text == "Hello from the fake upstream"
