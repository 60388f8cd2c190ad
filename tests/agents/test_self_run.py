"""Agents the gateway runs itself: send-message in both body shapes on the fake upstream and on the
embedded model, the loop over the model service (instructions, tools, threads), bots, tenancy, keys,
limits, the ledger and /metrics."""
from __future__ import annotations

import json

import pytest
from ag_ui.core.events import Event
from pydantic import TypeAdapter

from tests.agents.conftest import INSTRUCTIONS, ORIGIN, ag_ui, text_of, types_of, upstream_messages
from tests.support.fake_upstream import Reply
from tests.support.ledger import wait_for_records
from tests.support.sse import deltas, read_events

EVENTS = TypeAdapter(Event)  # ag-ui-protocol's own models: every event we send must parse as one


def test_ag_ui_run_on_the_fake_upstream_streams_the_answer_as_ag_ui_events(agents, fake):
    fake.default = Reply(content="the agent answers")
    resp = agents.send(agents.upstream_agent, ag_ui("hello", thread="t-basic"))
    assert resp.status_code == 200 and resp.headers["x-request-id"]
    events = read_events(resp)
    assert all(EVENTS.validate_python(e) for e in events)  # the protocol's own models accept each one
    assert types_of(events) == ["RUN_STARTED", "TEXT_MESSAGE_START"] + ["TEXT_MESSAGE_CONTENT"] * 3 + [
        "TEXT_MESSAGE_END", "RUN_FINISHED"]
    assert events[0] == {"type": "RUN_STARTED", "threadId": "t-basic", "runId": "run-1"}
    assert text_of(events) == "the agent answers" and "[DONE]" not in events
    assert events[-1]["usage"][0]["totalTokens"] > 0
    sent = upstream_messages(fake)
    assert sent[0] == {"role": "system", "content": INSTRUCTIONS} and sent[-1]["content"] == "hello"
    rid = resp.headers["x-request-id"]
    record = wait_for_records(agents.gw.admin.store, agents.gw.env_id, 1, lambda r: r.request_id == rid)[0]
    assert (record.surface, record.agent_id, record.model) == ("agent", agents.upstream_agent, "up-openai")
    assert record.completion_tokens > 0 and record.code is None


def test_legacy_body_gets_cloudbase_bot_objects_ending_with_done(agents, fake):
    fake.default = Reply(content="legacy answer")
    events = agents.run(agents.upstream_agent, {"msg": "hi", "history": [{"role": "user", "content": "before"}]})
    assert events[-1] == "[DONE]"
    objects = events[:-1]
    assert [o["finish_reason"] for o in objects] == ["continue", "continue", "stop"]
    assert "".join(o["content"] for o in objects) == "legacy answer"
    assert all(o["role"] == "assistant" and o["type"] == "text" and o["model"] == "up-openai" for o in objects)
    assert len({o["record_id"] for o in objects}) == 1
    assert objects[-1]["usage"]["totalTokens"] == objects[-1]["usage"]["promptTokens"] + objects[-1]["usage"][
        "completionTokens"] > 0
    assert [m["content"] for m in upstream_messages(fake)][-2:] == ["before", "hi"]


@pytest.mark.parametrize("body", [ag_ui("ping from ag-ui"), {"msg": "ping from legacy"}])
def test_both_shapes_run_on_the_embedded_model(agents, body):
    events = agents.run(agents.local_agent, body)
    said = text_of(events) if "messages" in body else "".join(o["content"] for o in events[:-1])
    assert "ping from" in said  # the scripted engine echoes the last user text


def test_a_client_declared_tool_streams_as_tool_call_events_and_the_run_ends_for_the_client(agents, fake):
    call = {"id": "call-w1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
    fake.script(Reply(content="", tool_calls=[call]))
    tool = {"name": "get_weather", "description": "the weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    events = agents.run(agents.upstream_agent, ag_ui("weather in Paris?", tools=[tool]))
    kinds = types_of(events)
    assert kinds[0] == "RUN_STARTED" and kinds[-1] == "RUN_FINISHED" and "TOOL_CALL_START" in kinds
    start = next(e for e in events if e["type"] == "TOOL_CALL_START")
    assert (start["toolCallId"], start["toolCallName"]) == ("call-w1", "get_weather")
    args = "".join(e["delta"] for e in events if e["type"] == "TOOL_CALL_ARGS")
    assert json.loads(args) == {"city": "Paris"}
    assert kinds.index("TOOL_CALL_END") < kinds.index("RUN_FINISHED")
    assert events[-1]["outcome"] == {"type": "success", "pendingToolCallIds": ["call-w1"]}
    sent = json.loads([r for r in fake.server.requests if r.path.endswith("/chat/completions")][-1].body)
    assert sent["tools"][0]["function"]["name"] == "get_weather"

    # the client answers the call: the next run carries the result, and the model sees it
    fake.script(Reply(content="It is sunny."))
    answer = ag_ui("weather in Paris?", tools=[tool])
    answer["messages"] += [{"id": "a1", "role": "assistant", "content": "", "toolCalls": [call]},
                           {"id": "t1", "role": "tool", "toolCallId": "call-w1", "content": "sunny, 21C"}]
    events = agents.run(agents.upstream_agent, answer)
    assert text_of(events) == "It is sunny."
    assert upstream_messages(fake)[-1] == {"role": "tool", "tool_call_id": "call-w1", "content": "sunny, 21C"}


def test_a_threads_second_turn_sees_the_first_and_records_list_both(agents, fake):
    fake.script(Reply(content="Nice to meet you, Ada."), Reply(content="Your name is Ada."))
    agents.run(agents.upstream_agent, ag_ui("My name is Ada.", thread="thread-ada"))
    agents.run(agents.upstream_agent, ag_ui("What is my name?", thread="thread-ada"))
    said = [(m["role"], m["content"]) for m in upstream_messages(fake)]
    assert said[-3:] == [("user", "My name is Ada."), ("assistant", "Nice to meet you, Ada."),
                         ("user", "What is my name?")]
    records = agents.call("GET", f"/bots/{agents.upstream_agent}/records?conversationId=thread-ada&sort=asc").json()
    assert [r["content"] for r in records["recordList"]] == ["My name is Ada.", "Nice to meet you, Ada.",
                                                             "What is my name?", "Your name is Ada."]
    assert records["total"] == 4
    conversations = agents.call("GET", f"/bots/{agents.upstream_agent}/conversation").json()["data"]
    assert "thread-ada" in [c["conversationId"] for c in conversations]


def test_a_legacy_conversation_continues_from_its_records(agents, fake):
    fake.script(Reply(content="Blue it is."), Reply(content="You like blue."))
    agents.run(agents.upstream_agent, {"msg": "I like blue.", "conversationId": "conv-blue"})
    agents.run(agents.upstream_agent, {"msg": "Which colour do I like?", "conversationId": "conv-blue"})
    assert [m["content"] for m in upstream_messages(fake)][-3:] == ["I like blue.", "Blue it is.",
                                                                    "Which colour do I like?"]


def test_conversations_can_be_made_renamed_and_deleted(agents):
    base = f"/bots/{agents.upstream_agent}/conversation"
    made = agents.call("POST", base, json={"title": "Trip plans"}).json()
    cid = made["conversationId"]
    assert agents.call("PATCH", f"{base}/{cid}", json={"title": "Paris trip"}).json()["title"] == "Paris trip"
    assert "Paris trip" in [c["title"] for c in agents.call("GET", base).json()["data"]]
    assert agents.call("DELETE", f"{base}/{cid}").json()["deleted"] is True
    gone = agents.call("DELETE", f"{base}/{cid}")
    assert gone.status_code == 404 and gone.json()["code"] == "AGENT_GET_INFO_ERROR"


def test_bots_list_pages_and_shows_the_documented_fields(agents):
    for n in range(3):
        agents.call("POST", "/bots", json={"name": f"paged-{n}", "model": "gemma-3-270m"}).raise_for_status()
    everything = agents.call("GET", "/bots?pageSize=100&pageNumber=1").json()
    page = agents.call("GET", "/bots?pageSize=2&pageNumber=2").json()
    assert page["total"] == everything["total"] >= 5 and len(page["botList"]) == 2
    assert page["botList"] == everything["botList"][2:4]
    bot = next(b for b in everything["botList"] if b["botId"] == agents.upstream_agent)
    for name in ("botId", "name", "introduction", "welcomeMessage", "avatar", "background", "isNeedRecommend", "type"):
        assert name in bot
    assert bot["welcomeMessage"] == "Hello!" and bot["isNeedRecommend"] is True
    assert agents.call("GET", f"/bots/{agents.upstream_agent}").json()["agentSetting"] == INSTRUCTIONS
    bad = agents.call("GET", "/bots?pageSize=0")
    assert bad.status_code == 400 and bad.json()["code"] == "AGENT_INVALID_PARAM"


def test_bot_create_update_delete_with_a_server_key(agents):
    made = agents.call("POST", "/bots", json={"name": "made-by-api", "model": "gemma-3-270m",
                                              "agentSetting": "Be kind.", "welcomeMessage": "Hey"})
    assert made.status_code == 200, made.text
    bot_id = made.json()["botId"]
    changed = agents.call("PATCH", f"/bots/{bot_id}", json={"welcomeMessage": "Hello again"}).json()
    assert changed["welcomeMessage"] == "Hello again" and changed["agentSetting"] == "Be kind."
    assert agents.call("DELETE", f"/bots/{bot_id}").json() == {"botId": bot_id, "deleted": True}
    assert agents.call("GET", f"/bots/{bot_id}").status_code == 404
    bad = agents.call("POST", "/bots", json={"name": "x", "model": "no-such-model"})
    assert bad.status_code == 400 and bad.json()["code"] == "AGENT_INVALID_PARAM"


def test_another_environments_agent_is_a_404(agents):
    for method, path, body in (("GET", f"/bots/{agents.other_agent}", None),
                               ("POST", f"/bots/{agents.other_agent}/send-message", {"msg": "hi"}),
                               ("GET", f"/bots/{agents.other_agent}/records", None),
                               ("DELETE", f"/bots/{agents.other_agent}", None)):
        resp = agents.call(method, path, json=body)
        assert resp.status_code == 404 and resp.json()["code"] == "AGENT_GET_INFO_ERROR", (method, path)
        assert resp.json()["requestId"] == resp.headers["x-request-id"]
    assert agents.other_agent not in [b["botId"] for b in agents.call("GET", "/bots?pageSize=100").json()["botList"]]
    assert agents.call("GET", f"/bots/{agents.other_agent}", agents.other_key).status_code == 200


def test_a_publishable_key_runs_agents_from_an_allowed_origin_but_may_not_create_them(agents, fake):
    key, origin = agents.publishable, {"Origin": ORIGIN}
    events = agents.run(agents.local_agent, ag_ui("from the browser"), key)
    assert "from the browser" in text_of(events)
    listed = agents.call("GET", "/bots", key, headers=origin)
    assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == ORIGIN
    assert "agentSetting" not in listed.json()["botList"][0]  # instructions stay on the server side
    refused = agents.call("POST", "/bots", key, headers=origin, json={"name": "nope", "model": "gemma-3-270m"})
    assert refused.status_code == 403 and refused.json()["code"] == "PERMISSION_DENIED"
    foreign = agents.send(agents.local_agent, ag_ui("hi"), key, Origin="https://evil.example.net")
    assert foreign.status_code == 403 and foreign.headers["content-type"].startswith("application/json")
    preflight = agents.call("OPTIONS", f"/bots/{agents.local_agent}/send-message", None, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code in (200, 204) and preflight.headers["access-control-allow-origin"] == ORIGIN


def test_failures_are_agent_errors_with_a_request_id(agents, fake):
    fake.script(Reply(role_chunk=False, error_after=0, error="the model is on fire"))
    before = agents.send(agents.upstream_agent, ag_ui("hi"))
    assert before.status_code == 502 and before.headers["content-type"].startswith("application/json")
    assert before.json()["code"] == "AGENT_REQUEST_LLM_ERROR"
    assert before.json()["requestId"] == before.headers["x-request-id"]
    fake.script(Reply(events=6, error_after=2))
    events = read_events(agents.send(agents.upstream_agent, ag_ui("hi")))
    assert types_of(events)[-1] == "RUN_ERROR" and "RUN_FINISHED" not in types_of(events)
    assert events[-1]["code"] == "AGENT_REQUEST_LLM_ERROR"
    bad = agents.send(agents.upstream_agent, {"messages": [{"role": "robot", "content": "x"}]})
    assert bad.status_code == 400 and bad.json()["code"] == "AGENT_INVALID_PARAM" and "messages[0].role" in bad.json()[
        "message"]
    garbage = agents.call("POST", f"/bots/{agents.upstream_agent}/send-message", data=b"{not json")
    assert garbage.status_code == 400 and garbage.json()["code"] == "AGENT_INVALID_PARAM"


def test_the_openai_protocol_entries_run_the_agent(agents, fake):
    fake.default = Reply(content="openai says hi")
    body = {"model": agents.upstream_agent, "messages": [{"role": "user", "content": "hi"}]}
    answer = agents.call("POST", "/openai/chat/completions", json=body).json()
    assert answer["choices"][0]["message"]["content"] == "openai says hi" and answer["model"] == agents.upstream_agent
    assert upstream_messages(fake)[0] == {"role": "system", "content": INSTRUCTIONS}
    streamed = agents.call("POST", f"/bots/{agents.upstream_agent}/openai/chat/completions", stream=True,
                           json={"messages": [{"role": "user", "content": "hi"}], "stream": True})
    events = read_events(streamed)
    assert events[-1] == "[DONE]" and "".join(deltas(events)) == "openai says hi"
