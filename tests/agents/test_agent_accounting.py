"""Agent runs under the environment's limits, in the ledger (`cbgate usage --by agent`: one record per model
call, so a run that called the gateway's MCP tools has one per round, and `--by mcp` one per tool call) and in
/metrics (one count per run, however many rounds it took)."""
from __future__ import annotations

import requests

from cbgate.core.agent_admin import AgentSpec
from tests.agents.conftest import ag_ui, text_of, tool_call
from tests.support.fake_upstream import Reply
from tests.support.ledger import wait_for_records
from tests.support.sse import read_events


def test_limits_refuse_a_run_before_it_starts(agents):
    admin, gw = agents.gw.admin, agents.gw
    env = admin.create_env()
    _, key = admin.create_key(env)
    agent = admin.agents.create(env, AgentSpec(name="limited", model="gemma-3-270m"))
    admin.set_env_limits(env, {"rpm": 1})
    gw.wait_for_snapshot()
    assert "hello" in text_of(agents.run(agent.id, ag_ui("hello"), key))
    refused = agents.send(agent.id, ag_ui("again"), key)
    assert refused.status_code == 429 and refused.headers["content-type"].startswith("application/json")
    assert refused.json()["code"] == "EXCEED_RATELIMIT" and refused.headers["retry-after"]
    rows = wait_for_records(admin.store, env, 2)
    assert sorted(r.code or "OK" for r in rows) == ["EXCEED_RATELIMIT", "OK"]
    assert all(r.surface == "agent" and r.agent_id == agent.id for r in rows)


def test_usage_by_agent_and_metrics_count_runs_by_agent_and_outcome(agents, fake):
    admin, gw = agents.gw.admin, agents.gw
    env = admin.create_env()
    _, key = admin.create_key(env)
    one = admin.agents.create(env, AgentSpec(name="one", model="gemma-3-270m"))
    two = admin.agents.create(env, AgentSpec(name="two", model="gemma-3-270m"))
    gw.wait_for_snapshot()
    for agent_id in (one.id, one.id, two.id):
        agents.run(agent_id, {"msg": "count me"}, key)
    requests.post(gw.chat_url(), json={"model": "gemma-3-270m", "messages": [{"role": "user", "content": "x"}]},
                  headers=gw.headers(key), timeout=60).raise_for_status()  # a plain chat call: not an agent run
    wait_for_records(admin.store, env, 4)
    usage = admin.usage_summary(env, by="agent")
    assert {r["agent"]: r["requests"] for r in usage["rows"]} == {one.id: 2, two.id: 1}
    assert usage["requests"] == 3 and usage["total_tokens"] == sum(r["total_tokens"] for r in usage["rows"]) > 0

    _, operator = admin.create_operator_token("metrics")
    gw.wait_for_snapshot()
    text = requests.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {operator}"}, timeout=10).text
    assert f'cbgate_agent_runs_total{{env="{env}",agent="{one.id}",outcome="OK"}} 2' in text
    assert f'cbgate_agent_runs_total{{env="{env}",agent="{two.id}",outcome="OK"}} 1' in text


def env_with_an_adder(agents, tooled, limits: dict | None = None):
    """A fresh environment (so its ledger holds only what the test does): a key, and an agent on the fake
    upstream that may call the test MCP server's tools as service `calc`."""
    admin = agents.gw.admin
    env = admin.create_env()
    _, key = admin.create_key(env)
    admin.set_model(env, "cloudbase", "up-openai", True)
    admin.mcp.create(env, "calc", tooled.server.url)
    agent = admin.agents.create(env, AgentSpec(name="adder", model="up-openai", mcp_services=["calc"]))
    if limits:
        admin.set_env_limits(env, limits)
    agents.gw.wait_for_snapshot()
    return env, key, agent


def test_a_run_with_tool_calls_is_a_record_per_model_round_and_per_tool_call_and_one_run(agents, fake, tooled):
    admin, gw = agents.gw.admin, agents.gw
    env, key, agent = env_with_an_adder(agents, tooled)
    fake.script(Reply(content="", tool_calls=[tool_call("c1", "calc__add", {"a": 1, "b": 2}),
                                              tool_call("c2", "calc__add", {"a": 3, "b": 4})]),
                Reply(content="3 and 7."))
    resp = agents.send(agent.id, ag_ui("Add 1+2 and 3+4."), key)
    rid = resp.headers["x-request-id"]
    assert "3 and 7." in text_of(read_events(resp))

    rows = wait_for_records(admin.store, env, 4)
    rounds = sorted((r for r in rows if r.surface == "agent"), key=lambda r: r.created_at)
    assert [r.request_id for r in rounds] == [rid, f"{rid}-r2"]  # one per model round
    assert all(r.agent_id == agent.id and r.code is None and r.prompt_tokens > 0 for r in rounds)
    assert rounds[1].prompt_tokens > rounds[0].prompt_tokens  # the second round reads the tool results too
    calls = [r for r in rows if r.surface == "mcp"]
    assert sorted((r.group_name, r.model, r.outcome) for r in calls) == [("calc", "add", "ok")] * 2
    assert all(r.agent_id == agent.id and r.request_id.startswith(rid + "-") for r in calls)  # whose run
    assert len(rows) == 4

    by_agent = admin.usage_summary(env, by="agent")
    assert by_agent["rows"] == [{**by_agent["rows"][0], "agent": agent.id, "requests": 2}]
    assert by_agent["total_tokens"] == sum(r.total_tokens for r in rounds)
    by_mcp = admin.usage_summary(env, by="mcp")["rows"]
    assert [(r["service"], r["tool"], r["outcome"], r["requests"]) for r in by_mcp] == [("calc", "add", "ok", 2)]
    assert gw.app.metrics.agent_runs[(env, agent.id, "OK")] == 1  # the run, once


def test_every_round_and_tool_call_is_admitted_and_a_refused_round_ends_the_run_counted_once(agents, fake, tooled):
    admin, gw = agents.gw.admin, agents.gw
    env, key, agent = env_with_an_adder(agents, tooled, {"rpm": 2})  # the first round, the tool call, no more
    fake.script(Reply(content="", tool_calls=[tool_call("c1", "calc__add", {"a": 1, "b": 2})]),
                Reply(content="never said"))
    events = agents.run(agent.id, ag_ui("Add 1+2."), key)
    assert next(e for e in events if e["type"] == "TOOL_CALL_RESULT")["content"] == "3"
    assert events[-1]["type"] == "RUN_ERROR" and events[-1]["code"] == "EXCEED_RATELIMIT"
    rows = wait_for_records(admin.store, env, 3)
    assert sorted((r.surface, r.code or "OK") for r in rows) == [
        ("agent", "EXCEED_RATELIMIT"), ("agent", "OK"), ("mcp", "OK")]
    runs = {k[2]: n for k, n in gw.app.metrics.agent_runs.items() if k[:2] == (env, agent.id)}
    assert runs == {"EXCEED_RATELIMIT": 1}
