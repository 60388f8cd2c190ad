"""Agents through the admin API: the same operations as `cbgate agent`, scoped to the caller's env, and
described in the OpenAPI document."""
import pytest

from tests.support.admin_plane import make_cast
from tests.support.gateway import start_in_thread


@pytest.fixture(scope="module")
def cast(tmp_path_factory):
    gw = start_in_thread(tmp_path_factory.mktemp("admin-agents") / "data")
    yield make_cast(gw)
    gw.stop()


def path(cast, env=None) -> str:
    return f"/admin/v1/envs/{env or cast.gw.env_id}/agents"


def test_server_key_creates_changes_and_deletes_an_agent(cast):
    body = {"name": "helper", "model": "gemma-3-270m", "instructions": "Be brief.", "questions": ["Hi?"]}
    made = cast.call("POST", path(cast), cast.server, json=body)
    assert made.status_code == 201, made.text
    agent = made.json()
    assert agent["id"].startswith("agent-") and agent["kind"] == "model" and agent["group"] == "cloudbase"
    assert [a["id"] for a in cast.call("GET", path(cast), cast.server).json()["data"]] == [agent["id"]]
    changed = cast.call("PUT", f"{path(cast)}/{agent['id']}", cast.operator, json={"welcome": "Hello!"})
    assert changed.status_code == 200 and changed.json()["welcome"] == "Hello!"
    assert changed.json()["instructions"] == "Be brief."
    assert cast.call("GET", f"{path(cast)}/{agent['id']}", cast.server).json()["welcome"] == "Hello!"
    assert cast.call("DELETE", f"{path(cast)}/{agent['id']}", cast.server).json() == {"id": agent["id"],
                                                                                     "deleted": True}
    gone = cast.call("GET", f"{path(cast)}/{agent['id']}", cast.server)
    assert gone.status_code == 404 and gone.json()["code"] == "AGENT_GET_INFO_ERROR"


def test_another_environment_neither_sees_nor_touches_an_agent(cast):
    agent = cast.call("POST", path(cast), cast.server, json={"name": "mine", "model": "gemma-3-270m"}).json()
    theirs = cast.call("GET", path(cast), cast.other_server)
    assert theirs.status_code == 403
    for method in ("GET", "DELETE"):
        resp = cast.call(method, f"{path(cast, cast.other_env)}/{agent['id']}", cast.other_server)
        assert resp.status_code == 404 and resp.json()["code"] == "AGENT_GET_INFO_ERROR"
    assert cast.call("GET", f"{path(cast)}/{agent['id']}", cast.server).status_code == 200
    cast.call("DELETE", f"{path(cast)}/{agent['id']}", cast.server)


@pytest.mark.parametrize("body, message", [
    ({"name": "x", "model": "nope"}, "not in group"),
    ({"name": "x", "model": "gemma-3-270m", "colour": "red"}, "unknown field"),
    ({"name": "x", "url": "http://10.0.0.1/agent"}, "CBGATE_UPSTREAM_ALLOW"),
    ({"name": 5, "model": "gemma-3-270m"}, "must be a string"),
    ({"name": "x", "model": "gemma-3-270m", "mcp_services": ["nope"]}, "no MCP service 'nope'"),
    ({"name": "x", "model": "gemma-3-270m", "mcp_services": "tools"}, "must be a list"),
])
def test_bad_agents_are_400s_naming_the_problem(cast, body, message):
    resp = cast.call("POST", path(cast), cast.server, json=body)
    assert resp.status_code == 400 and resp.json()["code"] == "INVALID_PARAM"
    assert message in resp.json()["message"]


def test_an_agent_names_its_mcp_services_and_a_change_replaces_them(cast):
    cast.gw.admin.mcp.create(cast.gw.env_id, "tools", "https://mcp.example.com/mcp")
    cast.gw.admin.mcp.create(cast.gw.env_id, "search", "https://search.example.com/mcp")
    made = cast.call("POST", path(cast), cast.server, json={"name": "tooled", "model": "gemma-3-270m",
                                                            "mcp_services": ["tools"]}).json()
    assert made["mcp_services"] == ["tools"]
    changed = cast.call("PUT", f"{path(cast)}/{made['id']}", cast.server, json={"mcp_services": ["search", "tools"]})
    assert changed.json()["mcp_services"] == ["search", "tools"]
    assert cast.call("GET", f"{path(cast)}/{made['id']}", cast.server).json()["mcp_services"] == ["search", "tools"]
    cast.call("DELETE", f"{path(cast)}/{made['id']}", cast.server)


def test_openapi_describes_the_agent_routes(cast):
    doc = cast.call("GET", "/admin/v1/openapi.json", None).json()
    assert set(doc["paths"]["/admin/v1/envs/{env}/agents/{agent}"]) == {"get", "put", "delete"}
    assert "Agent" in doc["components"]["schemas"]
    assert "mcp_services" in doc["components"]["schemas"]["AgentFields"]["properties"]
