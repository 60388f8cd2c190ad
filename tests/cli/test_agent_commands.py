"""`cbgate agent ...` as scripts run it: create prints the id on its last line, list/show/update/delete
with --json, and clear errors for what cannot be an agent."""
from __future__ import annotations

import json

import pytest

from tests.cli.test_tenant_commands import cbgate, last_line


@pytest.fixture
def env(tmp_path):
    return last_line(cbgate(tmp_path, "env", "create", "team-a"))


def test_agent_lifecycle_with_json(tmp_path, env):
    made = cbgate(tmp_path, "agent", "create", "--env", env, "helper", "--model", "gemma-3-270m",
                  "--instructions", "Be brief.\nAlways.", "--welcome", "Hi!", "--question", "What can you do?")
    agent_id = last_line(made)
    assert agent_id.startswith("agent-") and "runs on cloudbase/gemma-3-270m" in made.stdout
    listed = json.loads(cbgate(tmp_path, "agent", "list", "--env", env, "--json").stdout)
    assert [(a["id"], a["name"], a["kind"]) for a in listed] == [(agent_id, "helper", "model")]
    shown = json.loads(cbgate(tmp_path, "agent", "show", "--env", env, agent_id, "--json").stdout)
    assert shown["instructions"] == "Be brief.\nAlways." and shown["questions"] == ["What can you do?"]
    assert shown["welcome"] == "Hi!" and shown["group"] == "cloudbase"

    changed = json.loads(cbgate(tmp_path, "agent", "update", "--env", env, "helper", "--rename", "assistant",
                                "--welcome", "Hello.", "--json").stdout)
    assert changed["name"] == "assistant" and changed["welcome"] == "Hello."
    assert changed["instructions"] == "Be brief.\nAlways."  # what was not given stays
    table = cbgate(tmp_path, "agent", "list", "--env", env).stdout.splitlines()
    assert table[0].split("\t") == ["id", "name", "kind", "runs_on", "created_at"]
    assert table[1].split("\t")[:4] == [agent_id, "assistant", "model", "cloudbase/gemma-3-270m"]

    gone = json.loads(cbgate(tmp_path, "agent", "delete", "--env", env, "assistant", "--json").stdout)
    assert gone == {"id": agent_id, "deleted": True}
    assert json.loads(cbgate(tmp_path, "agent", "list", "--env", env, "--json").stdout) == []
    missing = cbgate(tmp_path, "agent", "show", "--env", env, agent_id, check=False)
    assert missing.returncode == 1 and "no agent" in missing.stderr


def test_a_fronted_agent_is_a_url_under_the_egress_policy(tmp_path, env):
    refused = cbgate(tmp_path, "agent", "create", "--env", env, "support", "--url", "http://127.0.0.1:8001",
                     check=False)
    assert refused.returncode == 1 and "CBGATE_UPSTREAM_ALLOW" in refused.stderr
    made = cbgate(tmp_path, "agent", "create", "--env", env, "support", "--url", "http://127.0.0.1:8001/",
                  env={"CBGATE_UPSTREAM_ALLOW": "127.0.0.1"})
    shown = json.loads(cbgate(tmp_path, "agent", "show", "--env", env, last_line(made), "--json").stdout)
    assert shown["kind"] == "url" and shown["url"] == "http://127.0.0.1:8001" and shown["model"] is None


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model"], "not in group"),
    ([], "needs a model"),
    (["--model", "gemma-3-270m", "--url", "https://example.com"], "not both"),
    (["--url", "ftp://example.com"], "http:// or https://"),
    (["--model", "gemma-3-270m", "--welcome", "\x1b]52;c;aGk=\x07"], "control"),
])
def test_what_cannot_be_an_agent_is_refused(tmp_path, env, args, message):
    refused = cbgate(tmp_path, "agent", "create", "--env", env, "x", *args, check=False)
    assert refused.returncode == 1 and message in refused.stderr, refused.stderr
    assert json.loads(cbgate(tmp_path, "agent", "list", "--env", env, "--json").stdout) == []


def test_names_are_unique_in_an_environment_and_envs_do_not_share(tmp_path, env):
    cbgate(tmp_path, "agent", "create", "--env", env, "helper", "--model", "gemma-3-270m")
    twice = cbgate(tmp_path, "agent", "create", "--env", env, "helper", "--model", "gemma-3-270m", check=False)
    assert twice.returncode == 1 and "already has an agent named" in twice.stderr
    other = last_line(cbgate(tmp_path, "env", "create", "team-b"))
    agent_id = last_line(cbgate(tmp_path, "agent", "create", "--env", other, "helper", "--model", "gemma-3-270m"))
    assert cbgate(tmp_path, "agent", "show", "--env", env, agent_id, check=False).returncode == 1


def test_an_agent_names_the_mcp_services_whose_tools_it_calls(tmp_path, env):
    loopback = {"CBGATE_UPSTREAM_ALLOW": "127.0.0.1"}
    cbgate(tmp_path, "mcp", "create", "--env", env, "tools", "--url", "http://127.0.0.1:9/mcp", env=loopback)
    unknown = cbgate(tmp_path, "agent", "create", "--env", env, "calc", "--model", "gemma-3-270m",
                     "--mcp-service", "nope", check=False)
    assert unknown.returncode == 1 and "no MCP service 'nope'" in unknown.stderr
    made = cbgate(tmp_path, "agent", "create", "--env", env, "calc", "--model", "gemma-3-270m",
                  "--mcp-service", "tools", "--json")
    assert json.loads(made.stdout)["mcp_services"] == ["tools"]
    row = cbgate(tmp_path, "agent", "list", "--env", env).stdout.splitlines()[1].split("\t")
    assert row[3] == "cloudbase/gemma-3-270m + MCP tools"
    changed = json.loads(cbgate(tmp_path, "agent", "update", "--env", env, "calc", "--welcome", "Hi",
                                "--json").stdout)
    assert changed["mcp_services"] == ["tools"]  # what was not given stays
    cleared = json.loads(cbgate(tmp_path, "agent", "update", "--env", env, "calc", "--no-mcp-services",
                                "--json").stdout)
    assert cleared["mcp_services"] == []
    fronted = cbgate(tmp_path, "agent", "create", "--env", env, "front", "--url", "http://127.0.0.1:8001",
                     "--mcp-service", "tools", check=False, env=loopback)
    assert fronted.returncode == 1 and "runs its own tools" in fronted.stderr
