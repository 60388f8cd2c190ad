"""One gateway for the Agent API tests, over a fake upstream (`up-openai`) and the embedded model's
scripted fake engine (`gemma-3-270m`, which answers "echo: <last user text>"), with agents on both, a
publishable key and an allowed origin, and a second environment with its own key and agent. `tooled` adds
a real MCP server (service `tools`) and an agent that calls its tools."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import requests

from cbgate.core.agent_admin import AgentSpec
from tests.support.catalog import write_catalog
from tests.support.fake_upstream import FakeUpstream, Reply, start_fake_upstream
from tests.support.gateway import Gateway, start_in_thread
from tests.support.mcp_server import McpTestServer, start_mcp_server
from tests.support.sse import read_events

SECRET = "sk-agents-upstream-secret-19"
ORIGIN = "https://app.example.com"
INSTRUCTIONS = "You are the test agent. Answer briefly."


@dataclass
class Agents:
    gw: Gateway
    fake: FakeUpstream
    upstream_agent: str  # runs on up-openai (the fake upstream)
    local_agent: str  # runs on the embedded model
    publishable: str
    other_env: str
    other_key: str
    other_agent: str  # the other env's

    def url(self, path: str) -> str:
        return f"{self.gw.url}/v1/aibot{path}"

    def call(self, method: str, path: str, key: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {key or self.gw.key}", **kwargs.pop("headers", {})}
        return requests.request(method, self.url(path), headers=headers, timeout=60, **kwargs)

    def send(self, agent_id: str, body: dict, key: str | None = None, **headers) -> requests.Response:
        return self.call("POST", f"/bots/{agent_id}/send-message", key, json=body, stream=True,
                         headers={"Accept": "text/event-stream", **headers})

    def run(self, agent_id: str, body: dict, key: str | None = None) -> list:
        resp = self.send(agent_id, body, key)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith("text/event-stream")
        return read_events(resp)


def ag_ui(text: str, thread: str | None = None, **more) -> dict:
    body = {"runId": "run-1", "messages": [{"id": "u1", "role": "user", "content": text}], "tools": [],
            "context": [], "state": {}, "forwardedProps": {}, **more}
    if thread:
        body["threadId"] = thread
    return body


def text_of(events: list) -> str:
    return "".join(e["delta"] for e in events if isinstance(e, dict) and e.get("type") == "TEXT_MESSAGE_CONTENT")


def types_of(events: list) -> list[str]:
    return [e["type"] if isinstance(e, dict) else e for e in events]


@pytest.fixture(scope="session")
def agents(tmp_path_factory):
    fake = start_fake_upstream(require_key=SECRET)
    data_dir = tmp_path_factory.mktemp("agents") / "data"
    write_catalog(data_dir, [{"name": "up-openai", "deployments": [
        {"kind": "openai", "base_url": fake.url, "api_key_env": "TEST_AGENTS_SECRET", "name": "openai-main",
         "model": "upstream-model"}]}])
    gw = start_in_thread(data_dir, env={"TEST_AGENTS_SECRET": SECRET, "CBGATE_UPSTREAM_ALLOW": "127.0.0.1"})
    admin = gw.admin
    admin.set_model(gw.env_id, "cloudbase", "up-openai", True)
    upstream = admin.agents.create(gw.env_id, AgentSpec(name="upstream", model="up-openai", instructions=INSTRUCTIONS,
                                                        welcome="Hello!", questions=["What can you do?"]))
    local = admin.agents.create(gw.env_id, AgentSpec(name="local", model="gemma-3-270m"))
    _, publishable = admin.create_key(gw.env_id, "publishable", name="web")
    admin.set_env_origins(gw.env_id, [ORIGIN])
    other_env = admin.create_env()
    _, other_key = admin.create_key(other_env)
    theirs = admin.agents.create(other_env, AgentSpec(name="theirs", model="gemma-3-270m"))
    gw.wait_for_snapshot()
    yield Agents(gw, fake, upstream.id, local.id, publishable, other_env, other_key, theirs.id)
    gw.stop()
    fake.stop()


@pytest.fixture
def fake(agents):
    agents.fake.server.queue.clear()
    agents.fake.server.requests.clear()
    agents.fake.default = Reply()
    return agents.fake


@dataclass
class Tooled:
    agent: str  # on up-openai, with MCP service `tools`
    server: McpTestServer


@pytest.fixture(scope="session")
def tooled(agents):
    server = start_mcp_server()
    admin, env = agents.gw.admin, agents.gw.env_id
    admin.mcp.create(env, "tools", server.url)
    agent = admin.agents.create(env, AgentSpec(name="calculator", model="up-openai", mcp_services=["tools"]))
    agents.gw.wait_for_snapshot()
    yield Tooled(agent.id, server)
    server.stop()


def tool_call(call_id: str, name: str, arguments: dict) -> dict:
    """A model's tool call, as the fake upstream is scripted to make it."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def chat_bodies(fake: FakeUpstream) -> list[dict]:
    """The bodies of the chat requests the fake upstream got, oldest first."""
    return [json.loads(r.body) for r in fake.server.requests if r.path.endswith("/chat/completions")]


def upstream_messages(fake: FakeUpstream) -> list[dict]:
    """The messages the last chat request to the fake upstream carried."""
    return chat_bodies(fake)[-1]["messages"]
