"""Agents the gateway runs itself calling the environment's MCP tools server-side: a real MCP server (PyPI
`mcp`) on loopback, the model a scripted fake upstream. The tool's real answer reaches the model and the
AG-UI stream; each call is permitted or refused by the calling key's grants, metered, and a server that
stalls or dies ends in an error, never a hang."""
from __future__ import annotations

from ag_ui.core.events import Event
from pydantic import TypeAdapter

from cbgate.core.agent_admin import AgentSpec
from cbgate.core.permissions import KeyPermissions, parse_mcp_specs
from cbgate.store.usage import MCP_SURFACE
from tests.agents.conftest import ag_ui, chat_bodies, text_of, tool_call as call, types_of
from tests.support.bad_mcp_server import start_bad_mcp_server
from tests.support.fake_upstream import Reply
from tests.support.ledger import wait_for_records
from tests.support.sse import deltas, read_events

EVENTS = TypeAdapter(Event)


def key_with(agents, *specs: str) -> tuple[str, str]:
    row, plain = agents.gw.admin.create_key(agents.gw.env_id, "server",
                                            permissions=KeyPermissions(mcp=parse_mcp_specs(list(specs))))
    agents.gw.wait_for_snapshot()
    return row.id, plain


def test_an_agent_answers_by_calling_a_real_mcp_tool(agents, fake, tooled):
    before = tooled.server.seen.get("add", 0)
    fake.script(Reply(content="", tool_calls=[call("call-add", "tools__add", {"a": 2, "b": 3})]),
                Reply(content="2 plus 3 is 5."))
    resp = agents.send(tooled.agent, ag_ui("What is 2 plus 3?"))
    assert resp.status_code == 200
    events = read_events(resp)
    assert all(EVENTS.validate_python(e) for e in events)  # ag-ui-protocol's own models accept each one
    kinds = types_of(events)
    assert kinds[:2] == ["RUN_STARTED", "TOOL_CALL_START"] and kinds[-1] == "RUN_FINISHED"
    assert kinds.index("TOOL_CALL_END") < kinds.index("TOOL_CALL_RESULT") < kinds.index("TEXT_MESSAGE_START")
    start = next(e for e in events if e["type"] == "TOOL_CALL_START")
    assert (start["toolCallId"], start["toolCallName"]) == ("call-add", "tools__add")
    result = next(e for e in events if e["type"] == "TOOL_CALL_RESULT")
    assert (result["toolCallId"], result["content"], result["role"]) == ("call-add", "5", "tool")
    assert text_of(events) == "2 plus 3 is 5."
    assert "outcome" not in events[-1]  # nothing is left for the client to answer
    assert tooled.server.seen["add"] == before + 1

    first, second = chat_bodies(fake)[-2:]
    offered = sorted(t["function"]["name"] for t in first["tools"])
    assert offered == ["tools__add", "tools__fail", "tools__secret", "tools__stall"]  # a server key: all of them
    add = next(t["function"] for t in first["tools"] if t["function"]["name"] == "tools__add")
    assert set(add["parameters"]["properties"]) == {"a", "b"} and "Add two numbers" in add["description"]
    assert second["messages"][-2]["tool_calls"][0]["id"] == "call-add"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call-add", "content": "5"}


def test_the_legacy_shape_shows_the_answer_after_the_tool(agents, fake, tooled):
    fake.script(Reply(content="", tool_calls=[call("call-l", "tools__add", {"a": 40, "b": 2})]),
                Reply(content="It is 42."))
    resp = agents.send(tooled.agent, {"msg": "What is 40 plus 2?"})
    events = read_events(resp)
    assert events[-1] == "[DONE]"
    objects = events[:-1]
    assert "".join(o["content"] for o in objects) == "It is 42."
    assert objects[-1]["finish_reason"] == "stop" and all(o["type"] == "text" for o in objects)
    assert chat_bodies(fake)[-1]["messages"][-1] == {"role": "tool", "tool_call_id": "call-l", "content": "42"}
    rid = resp.headers["x-request-id"]
    rounds = wait_for_records(agents.gw.admin.store, agents.gw.env_id, 2,
                              lambda r: r.surface == "agent" and r.request_id.startswith(rid))
    usage = objects[-1]["usage"]  # the run's: both model rounds
    assert usage["promptTokens"] == sum(r.prompt_tokens for r in rounds) > 0
    assert usage["totalTokens"] == sum(r.total_tokens for r in rounds)


def test_a_tool_outside_the_keys_grant_is_refused_and_the_model_is_told(agents, fake, tooled):
    _, key = key_with(agents, "tools:add")
    before = tooled.server.seen.get("secret", 0)
    fake.script(Reply(content="", tool_calls=[call("call-s", "tools__secret", {})]),
                Reply(content="I may not read that."))
    resp = agents.send(tooled.agent, ag_ui("Read the secret."), key)
    events = read_events(resp)
    result = next(e for e in events if e["type"] == "TOOL_CALL_RESULT")
    assert "may not call tool secret" in result["content"]
    assert text_of(events) == "I may not read that." and types_of(events)[-1] == "RUN_FINISHED"
    assert tooled.server.seen.get("secret", 0) == before  # the refused call never reached the server
    first, second = chat_bodies(fake)[-2:]
    assert [t["function"]["name"] for t in first["tools"]] == ["tools__add"]  # only what the key may call
    assert "may not call tool secret" in second["messages"][-1]["content"]
    rid = resp.headers["x-request-id"]
    (row,) = wait_for_records(agents.gw.admin.store, agents.gw.env_id, 1,
                              lambda r: r.surface == MCP_SURFACE and r.request_id.startswith(rid))
    assert (row.group_name, row.model, row.outcome, row.code) == ("tools", "secret", "refused", "PERMISSION_DENIED")


def test_a_revoked_grant_stays_revoked_for_the_agent(agents, fake, tooled):
    key_id, key = key_with(agents, "tools:*")
    fake.script(Reply(content="", tool_calls=[call("call-1", "tools__secret", {})]), Reply(content="done"))
    granted = read_events(agents.send(tooled.agent, ag_ui("Read the secret."), key))
    assert next(e for e in granted if e["type"] == "TOOL_CALL_RESULT")["content"] == "classified"

    agents.gw.admin.set_key_permissions(key_id, KeyPermissions(mcp=parse_mcp_specs(["tools:add"])))
    agents.gw.wait_for_snapshot()
    seen = tooled.server.seen.get("secret", 0)
    fake.script(Reply(content="", tool_calls=[call("call-2", "tools__secret", {})]), Reply(content="done"))
    revoked = read_events(agents.send(tooled.agent, ag_ui("Read the secret again."), key))
    assert "may not call tool secret" in next(e for e in revoked if e["type"] == "TOOL_CALL_RESULT")["content"]
    assert tooled.server.seen.get("secret", 0) == seen
    assert [t["function"]["name"] for t in chat_bodies(fake)[-2]["tools"]] == ["tools__add"]


def test_a_key_without_the_service_runs_the_agent_without_its_tools(agents, fake, tooled):
    _, key = key_with(agents, "elsewhere:*")
    fake.default = Reply(content="no tools here")
    events = agents.run(tooled.agent, ag_ui("hello"), key)
    assert text_of(events) == "no tools here"
    assert "tools" not in chat_bodies(fake)[-1]


def test_client_tools_stay_the_clients_beside_the_gateways(agents, fake, tooled):
    weather = {"name": "get_weather", "description": "the weather",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    fake.script(Reply(content="", tool_calls=[call("call-a", "tools__add", {"a": 1, "b": 1}),
                                              call("call-w", "get_weather", {"city": "Paris"})]))
    events = agents.run(tooled.agent, ag_ui("Add and check the weather.", tools=[weather]))
    result = next(e for e in events if e["type"] == "TOOL_CALL_RESULT")
    assert (result["toolCallId"], result["content"]) == ("call-a", "2")
    assert events[-1]["type"] == "RUN_FINISHED"
    assert events[-1]["outcome"] == {"type": "success", "pendingToolCallIds": ["call-w"]}
    assert len(chat_bodies(fake)) == 1  # the run ended for the client to answer its own tool
    assert {t["function"]["name"] for t in chat_bodies(fake)[0]["tools"]} >= {"get_weather", "tools__add"}


def test_a_model_that_never_stops_calling_tools_ends_with_a_run_error(agents, fake, tooled):
    fake.default = Reply(content="", tool_calls=[call("call-loop", "tools__add", {"a": 1, "b": 2})])
    events = agents.run(tooled.agent, ag_ui("Loop forever."))
    assert types_of(events)[-1] == "RUN_ERROR" and events[-1]["code"] == "AGENT_REQUEST_LLM_ERROR"
    assert "8 rounds" in events[-1]["message"]
    assert len(chat_bodies(fake)) == 8 and types_of(events).count("TOOL_CALL_RESULT") == 7


def test_a_stalled_tool_gives_the_model_an_error_on_the_services_timeout(agents, fake, tooled):
    admin, env = agents.gw.admin, agents.gw.env_id
    admin.mcp.create(env, "slow", tooled.server.url, timeout=1)
    agent = admin.agents.create(env, AgentSpec(name="slow-agent", model="up-openai", mcp_services=["slow"]))
    agents.gw.wait_for_snapshot()
    fake.script(Reply(content="", tool_calls=[call("call-st", "slow__stall", {})]), Reply(content="It timed out."))
    resp = agents.send(agent.id, ag_ui("Wait for it."))
    events = read_events(resp)
    result = next(e for e in events if e["type"] == "TOOL_CALL_RESULT")
    assert result["content"] == "error: the MCP server did not answer in time"
    assert text_of(events) == "It timed out." and types_of(events)[-1] == "RUN_FINISHED"
    rid = resp.headers["x-request-id"]
    (row,) = wait_for_records(admin.store, env, 1, lambda r: r.surface == MCP_SURFACE and r.request_id.startswith(rid))
    assert (row.group_name, row.model, row.outcome) == ("slow", "stall", "timeout")
    tooled.server.release.set()  # the server's own handler may end now


def test_an_mcp_server_that_does_not_answer_refuses_the_run_before_it_starts(agents, fake):
    bad = start_bad_mcp_server("stall")
    try:
        admin, env = agents.gw.admin, agents.gw.env_id
        admin.mcp.create(env, "dead", bad.url, timeout=1)
        agent = admin.agents.create(env, AgentSpec(name="dead-agent", model="up-openai", mcp_services=["dead"]))
        agents.gw.wait_for_snapshot()
        resp = agents.send(agent.id, ag_ui("hello"))
        assert resp.status_code == 502 and resp.headers["content-type"].startswith("application/json")
        assert resp.json()["code"] == "AGENT_SERVER_ERR" and "dead" in resp.json()["message"]
        assert chat_bodies(fake) == []  # no model call was made
    finally:
        bad.stop()


def test_arguments_that_are_not_a_json_object_are_the_models_error_and_reach_no_server(agents, fake, tooled):
    before = dict(tooled.server.seen)
    bad = {"id": "call-bad", "type": "function", "function": {"name": "tools__add", "arguments": "{not json"}}
    fake.script(Reply(content="", tool_calls=[bad, call("call-list", "tools__add", [1, 2])]), Reply(content="oops"))
    events = agents.run(tooled.agent, ag_ui("Add badly."))
    results = {e["toolCallId"]: e["content"] for e in events if e["type"] == "TOOL_CALL_RESULT"}
    assert results == {"call-bad": "error: the arguments must be a JSON object",
                       "call-list": "error: the arguments must be a JSON object"}
    assert tooled.server.seen == before and text_of(events) == "oops"


def test_a_service_on_the_sse_transport_serves_the_agent_too(agents, fake, tooled):
    admin, env = agents.gw.admin, agents.gw.env_id
    admin.mcp.create(env, "legacy-tools", tooled.server.sse_url, transport="sse")
    agent = admin.agents.create(env, AgentSpec(name="sse-agent", model="up-openai", mcp_services=["legacy-tools"]))
    agents.gw.wait_for_snapshot()
    fake.script(Reply(content="", tool_calls=[call("call-sse", "legacy-tools__add", {"a": 5, "b": 6})]),
                Reply(content="11"))
    events = agents.run(agent.id, ag_ui("5+6?"))
    assert next(e for e in events if e["type"] == "TOOL_CALL_RESULT")["content"] == "11"
    assert text_of(events) == "11"


def test_the_openai_entry_answers_after_the_tools_without_showing_the_gateways_calls(agents, fake, tooled):
    fake.script(Reply(content="", tool_calls=[call("call-o", "tools__add", {"a": 7, "b": 8})]), Reply(content="15."))
    resp = agents.call("POST", "/openai/chat/completions",
                       json={"model": tooled.agent, "messages": [{"role": "user", "content": "7+8?"}]})
    answer = resp.json()
    assert answer["model"] == tooled.agent and answer["choices"][0]["finish_reason"] == "stop"
    assert answer["choices"][0]["message"]["content"] == "15." and "tool_calls" not in answer["choices"][0]["message"]
    assert chat_bodies(fake)[-1]["messages"][-1] == {"role": "tool", "tool_call_id": "call-o", "content": "15"}
    rid = resp.headers["x-request-id"]
    rounds = wait_for_records(agents.gw.admin.store, agents.gw.env_id, 2,
                              lambda r: r.surface == "agent" and r.request_id.startswith(rid))
    assert answer["usage"]["total_tokens"] == sum(r.total_tokens for r in rounds)


def test_the_openai_entrys_stream_shows_the_text_and_only_the_clients_tool_calls(agents, fake, tooled):
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    fake.script(Reply(content="Let me add. ", tool_calls=[call("call-s1", "tools__add", {"a": 1, "b": 1})]),
                Reply(content="Two. Now the weather.", tool_calls=[call("call-w", "get_weather", {"city": "Oslo"}),
                                                                   call("call-s2", "tools__add", {"a": 2, "b": 2})]))
    resp = agents.call("POST", f"/bots/{tooled.agent}/openai/chat/completions", stream=True,
                       json={"messages": [{"role": "user", "content": "go"}], "stream": True, "tools": [weather]})
    events = read_events(resp)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert "".join(deltas(chunks)) == "Let me add. Two. Now the weather."
    calls = [c for chunk in chunks for choice in chunk["choices"] for c in choice["delta"].get("tool_calls") or ()]
    assert [c.get("id") for c in calls if c.get("id")] == ["call-w"]  # the gateway's two calls stay inside
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0].get("finish_reason")
            ] == ["tool_calls"]
    assert len(chat_bodies(fake)) == 2 and tooled.server.seen["add"] >= 2
    rid = resp.headers["x-request-id"]
    rounds = wait_for_records(agents.gw.admin.store, agents.gw.env_id, 2,
                              lambda r: r.surface == "agent" and r.request_id.startswith(rid))
    usage = [c["usage"] for c in chunks if c.get("usage")][-1]  # the run's: both rounds
    assert usage["total_tokens"] == sum(r.total_tokens for r in rounds) > 0


def test_the_bot_routes_set_and_show_an_agents_mcp_services(agents, tooled):
    made = agents.call("POST", "/bots", json={"name": "bot-with-tools", "model": "up-openai",
                                             "mcpServices": ["tools"]})
    assert made.status_code == 200, made.text
    bot_id = made.json()["botId"]
    assert agents.call("GET", f"/bots/{bot_id}").json()["mcpServices"] == ["tools"]
    assert "mcpServices" not in agents.call("GET", f"/bots/{bot_id}", agents.publishable).json()
    cleared = agents.call("PATCH", f"/bots/{bot_id}", json={"mcpServices": []})
    assert cleared.json()["mcpServices"] == []
    unknown = agents.call("POST", "/bots", json={"name": "bot-unknown", "model": "up-openai", "mcpServices": ["x"]})
    assert unknown.status_code == 400 and unknown.json()["code"] == "AGENT_INVALID_PARAM"
    agents.call("DELETE", f"/bots/{bot_id}")
