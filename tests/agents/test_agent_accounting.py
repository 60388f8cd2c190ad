"""Agent runs under the environment's limits, in the ledger (`cbgate usage --by agent`) and in /metrics."""
from __future__ import annotations

import requests

from cbgate.core.agent_admin import AgentSpec
from tests.agents.conftest import ag_ui, text_of
from tests.support.ledger import wait_for_records


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
