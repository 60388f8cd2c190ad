"""What a publishable key may do (core/key_kinds.py, the one policy), each decision seen through the HTTP
edge: the model surfaces answer it, from its environment's origins only; images, stored responses, agent
changes and an agent's configuration, an MCP service it was not granted and the admin API are refused to
it, and a server key of the same environment is allowed each of them."""
from __future__ import annotations

from dataclasses import replace

import pytest
import requests

from cbgate.core.agent_admin import AgentSpec
from cbgate.core.keys import key_digest, new_secret
from cbgate.core.permissions import KeyPermissions, parse_mcp_specs
from cbgate.store import envs as stored_envs

SHOP = "https://shop.example.com"
MODEL = "up-openai"
HELLO = [{"role": "user", "content": "hi"}]


class Env:
    def __init__(self, surfaces):
        admin = surfaces.gw.admin
        self.gw, self.id = surfaces.gw, admin.create_env()
        _, self.server = admin.create_key(self.id)
        _, self.publishable = admin.create_key(self.id, "publishable")
        _, self.granted = admin.create_key(self.id, "publishable",
                                           permissions=KeyPermissions(mcp=parse_mcp_specs(["tools:*"])))
        admin.set_env_origins(self.id, [SHOP])
        self.agent = admin.agents.create(self.id, AgentSpec(name="helper", model=MODEL, instructions="be brief"))
        admin.mcp.create(self.id, "tools", "http://127.0.0.1:9/mcp")
        self.gw.wait_for_snapshot()

    def call(self, method: str, path: str, key: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}", "Origin": SHOP, **kwargs.pop("headers", {})}
        return requests.request(method, self.gw.url + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def env(surfaces):
    return Env(surfaces)


@pytest.mark.parametrize("path,body", [
    ("/v1/ai/cloudbase/chat/completions", {"model": MODEL, "messages": HELLO}),
    ("/v1/ai/cloudbase/v1/messages", {"model": MODEL, "max_tokens": 16, "messages": HELLO}),
    ("/v1/ai/cloudbase/v1/responses", {"model": MODEL, "input": "hi"}),
])
def test_the_model_surfaces_answer_a_publishable_key_from_a_listed_origin(env, fake, path, body):
    answer = env.call("POST", path, env.publishable, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert answer.json().get("store", False) is False  # a Responses answer is never stored for it
    assert env.call("GET", "/v1/ai/cloudbase/models", env.publishable).status_code == 200


def test_a_publishable_key_from_an_unlisted_origin_is_refused(env, fake):
    body = {"model": MODEL, "messages": HELLO}
    refused = env.call("POST", "/v1/ai/cloudbase/chat/completions", env.publishable, json=body,
                       headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and "https://evil.example" in refused.json()["message"]
    server = env.call("POST", "/v1/ai/cloudbase/chat/completions", env.server, json=body,
                      headers={"Origin": "https://evil.example"})
    assert server.status_code == 200 and "access-control-allow-origin" not in server.headers


def _stored(env) -> str:
    made = env.call("POST", "/v1/ai/cloudbase/v1/responses", env.server, json={"model": MODEL, "input": "keep"})
    assert made.status_code == 200 and made.json()["store"] is True
    return made.json()["id"]


REFUSED = {
    "admin API": lambda env, key: env.call("GET", f"/admin/v1/envs/{env.id}/keys", key),
    "images": lambda env, key: env.call("POST", "/v1/ai/cloudbase/v1/images/generations", key,
                                   json={"model": "up-image", "prompt": "a kite"}),
    "stored response": lambda env, key: env.call("GET", f"/v1/ai/cloudbase/v1/responses/{_stored(env)}", key),
    "continuing one": lambda env, key: env.call("POST", "/v1/ai/cloudbase/v1/responses", key, json={
        "model": MODEL, "input": "go on", "previous_response_id": _stored(env)}),
    "deleting one": lambda env, key: env.call("DELETE", f"/v1/ai/cloudbase/v1/responses/{_stored(env)}", key),
    "agent create": lambda env, key: env.call("POST", "/v1/aibot/bots", key, json={"name": "new", "model": MODEL}),
    "agent change": lambda env, key: env.call("PATCH", f"/v1/aibot/bots/{env.agent.id}", key, json={"name": "helper"}),
    "MCP without a grant": lambda env, key: env.call("POST", "/v1/cloudrun/tools/messages", key,
                                                json={"jsonrpc": "2.0", "id": 1, "method": "ping"}),
}


@pytest.mark.parametrize("what", sorted(REFUSED))
def test_what_only_a_server_key_may_do(env, fake, what):
    refused = REFUSED[what](env, env.publishable)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] in ("PERMISSION_DENIED", "AGENT_PERMISSION_DENIED")
    allowed = REFUSED[what](env, env.server)
    assert allowed.status_code != 403, allowed.text


def test_a_publishable_key_sees_agents_without_their_configuration(env, fake):
    shown = env.call("GET", f"/v1/aibot/bots/{env.agent.id}", env.publishable).json()
    assert shown["name"] == "helper" and "agentSetting" not in shown and "model" not in shown
    assert env.call("GET", f"/v1/aibot/bots/{env.agent.id}", env.server).json()["agentSetting"] == "be brief"
    listed = env.call("GET", "/v1/aibot/bots", env.publishable).json()["botList"]
    assert env.agent.id in [b["botId"] for b in listed] and not any("agentSetting" in b for b in listed)


def test_a_publishable_key_reaches_an_mcp_service_its_allow_list_names(env):
    answer = env.call("POST", "/v1/cloudrun/tools/messages", env.granted,
                      json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert answer.status_code != 403, answer.text  # permitted: the (absent) server is what fails


def test_a_key_of_another_kind_cannot_be_made(env):
    made = env.call("POST", f"/admin/v1/envs/{env.id}/keys", env.server, json={"kind": "root"})
    assert made.status_code == 400 and "server or publishable" in made.json()["message"]


def test_a_stored_kind_this_version_does_not_know_gets_the_fewest_rights(env):
    """A row written by something else (a newer version, a hand edit) fails closed, never a 500."""
    admin = env.gw.admin
    row, _ = admin.create_key(env.id, "publishable")
    plain = new_secret("cbxk_")
    stored_envs.insert_key(admin.store, replace(row, id="key-unknownkind", digest=key_digest(plain),
                                                prefix=plain[:12], kind="root"))
    env.gw.wait_for_snapshot()
    assert env.call("GET", f"/admin/v1/envs/{env.id}/keys", plain).status_code == 403
    chat = env.call("POST", "/v1/ai/cloudbase/chat/completions", plain, json={"model": MODEL, "messages": HELLO})
    assert chat.status_code == 200, chat.text
