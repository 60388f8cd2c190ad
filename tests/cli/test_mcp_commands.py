"""`cbgate mcp ...` and `cbgate key ... --mcp` as scripts run them: the service name last, `--json`, headers
that never show up again, the egress policy on the URL, and a key's MCP list replaced whole."""
from __future__ import annotations

import json
import sqlite3

import pytest

from tests.cli.test_tenant_commands import cbgate, last_line

HEADER_SECRET = "mcp-header-canary-71c0"
LOOPBACK_ALLOWED = {"CBGATE_UPSTREAM_ALLOW": "127.0.0.1"}


@pytest.fixture
def env(tmp_path):
    return last_line(cbgate(tmp_path, "env", "create", "team-a"))


def test_create_list_show_update_delete(tmp_path, env):
    created = cbgate(tmp_path, "mcp", "create", "--env", env, "search", "--url", "http://127.0.0.1:9/mcp",
                     "--header", f"Authorization: Bearer {HEADER_SECRET}", "--timeout", "12", env=LOOPBACK_ALLOWED)
    assert last_line(created) == "search"
    assert "/v1/cloudrun/search/messages" in created.stdout and HEADER_SECRET not in created.stdout

    listed = json.loads(cbgate(tmp_path, "mcp", "list", "--env", env, "--json").stdout)
    assert [(s["name"], s["url"], s["transport"], s["timeout"], s["has_headers"]) for s in listed] == [
        ("search", "http://127.0.0.1:9/mcp", "streamable-http", 12.0, True)]
    shown = cbgate(tmp_path, "mcp", "show", "--env", env, "search").stdout
    assert "has_headers\tyes" in shown and HEADER_SECRET not in shown
    db = (tmp_path / "cbgate.db").read_bytes()
    assert HEADER_SECRET.encode() not in db  # encrypted at rest

    updated = json.loads(cbgate(tmp_path, "mcp", "update", "--env", env, "search", "--transport", "sse",
                                "--clear-headers", "--timeout", "default", "--json").stdout)
    assert (updated["transport"], updated["has_headers"], updated["timeout"]) == ("sse", False, 60.0)
    off = json.loads(cbgate(tmp_path, "mcp", "update", "--env", env, "search", "--enabled", "off", "--json").stdout)
    assert off["enabled"] is False

    assert cbgate(tmp_path, "mcp", "delete", "--env", env, "search").returncode == 0
    assert json.loads(cbgate(tmp_path, "mcp", "list", "--env", env, "--json").stdout) == []
    gone = cbgate(tmp_path, "mcp", "show", "--env", env, "search", check=False)
    assert gone.returncode == 1 and "does not exist" in gone.stderr


@pytest.mark.parametrize("args, message", [
    (["Bad_Name", "--url", "https://mcp.example.com/mcp"], "lower-case letters"),
    (["ok", "--url", "ftp://mcp.example.com/"], "url"),
    (["ok", "--url", "http://127.0.0.1:9/mcp"], "non-public"),  # the egress policy, as at every connect
    (["ok", "--url", "https://mcp.example.com/mcp", "--header", "Host: evil"], "header name"),
    (["ok", "--url", "https://mcp.example.com/mcp", "--header", "no colon"], "Name: value"),
    (["ok", "--url", "https://mcp.example.com/mcp", "--timeout", "0"], "timeout"),
])
def test_bad_input_is_refused_clearly(tmp_path, env, args, message):
    refused = cbgate(tmp_path, "mcp", "create", "--env", env, *args, check=False)
    assert refused.returncode == 1 and message in refused.stderr and "Traceback" not in refused.stderr


def test_a_duplicate_service_and_an_unknown_env_are_refused(tmp_path, env):
    cbgate(tmp_path, "mcp", "create", "--env", env, "search", "--url", "https://mcp.example.com/mcp")
    again = cbgate(tmp_path, "mcp", "create", "--env", env, "search", "--url", "https://mcp.example.com/mcp",
                   check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    other = cbgate(tmp_path, "mcp", "list", "--env", "team-zz", check=False)
    assert other.returncode == 1 and "does not exist" in other.stderr


def _key_mcp(tmp_path, env) -> dict:
    return {k["id"]: k["mcp"] for k in json.loads(cbgate(tmp_path, "key", "list", "--env", env, "--json").stdout)}


def test_a_key_carries_one_mcp_list_and_set_mcp_replaces_it_whole(tmp_path, env):
    cbgate(tmp_path, "key", "create", "--env", env, "--mcp", "search:query,fetch", "--mcp", "files:*")
    key_id = next(iter(_key_mcp(tmp_path, env)))
    assert _key_mcp(tmp_path, env)[key_id] == {"files": "*", "search": ["fetch", "query"]}
    table = cbgate(tmp_path, "key", "list", "--env", env).stdout
    assert "files:* search:fetch,query" in table

    cbgate(tmp_path, "key", "set-mcp", key_id, "--mcp", "search:query")
    assert _key_mcp(tmp_path, env)[key_id] == {"search": ["query"]}  # fetch and files: revoked, not merged
    with sqlite3.connect(tmp_path / "cbgate.db") as conn:  # one stored value, nothing beside it
        (stored,) = conn.execute("SELECT permissions FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    assert json.loads(stored) == {"mcp": {"search": ["query"]}}
    cbgate(tmp_path, "key", "set-mcp", key_id, "--none")
    assert _key_mcp(tmp_path, env)[key_id] == {}
    cbgate(tmp_path, "key", "set-mcp", key_id, "--default")
    assert _key_mcp(tmp_path, env)[key_id] is None


@pytest.mark.parametrize("spec, message", [
    ("search", "SERVICE:TOOL"), ("Bad:x", "service name"), ("search:bad tool", "tool name"),
])
def test_a_bad_mcp_grant_is_refused(tmp_path, env, spec, message):
    refused = cbgate(tmp_path, "key", "create", "--env", env, "--mcp", spec, check=False)
    assert refused.returncode == 1 and message in refused.stderr
    twice = cbgate(tmp_path, "key", "create", "--env", env, "--mcp", "a:x", "--mcp", "a:y", check=False)
    assert twice.returncode == 1 and "twice" in twice.stderr
