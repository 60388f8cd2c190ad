"""The Responses surface through the official `openai` SDK, unchanged: create and stream, tools, stored
responses (chains, retrieval, input items, deletion, other tenants), truncation and compaction."""
from __future__ import annotations

import json
import time

import openai
import pytest
import requests
import sqlalchemy

from tests.support.fake_upstream import Reply
from tests.support.ledger import wait_for_records

WEATHER = {"type": "function", "name": "get_weather", "description": "weather of a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
TOOL_CALLS = [{"id": "call_7", "type": "function",
               "function": {"name": "get_weather", "arguments": json.dumps({"city": "Hangzhou"})}}]


@pytest.fixture
def client(surfaces):
    return openai.OpenAI(base_url=surfaces.base(), api_key=surfaces.gw.key, max_retries=0)


def sent_messages(fake) -> list[dict]:
    return fake.chat_requests[-1].json()["messages"]


def test_create_on_the_embedded_engine_is_stored(client):
    response = client.responses.create(model="gemma-3-270m", input="ping me", instructions="be brief")
    assert response.object == "response" and response.status == "completed"
    assert "ping me" in response.output_text  # the scripted engine echoes
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    again = client.responses.retrieve(response.id)
    assert again.output_text == response.output_text and again.instructions == "be brief"
    items = client.responses.input_items.list(response.id)
    assert [(i.type, i.role) for i in items.data] == [("message", "user")]


def test_stream_is_the_responses_event_sequence(client, fake):
    fake.default = Reply(events=3)
    with client.responses.stream(model="up-openai", input="hello") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds.count("response.output_text.delta") == 3
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert final.output_text == "t0 t1 t2 " and final.usage.output_tokens == 3
    assert client.responses.retrieve(final.id).output_text == "t0 t1 t2 "


def test_function_tools_and_their_output_continue_the_chain(client, fake):
    fake.default = Reply(content="", tool_calls=TOOL_CALLS)
    first = client.responses.create(model="up-openai", input="weather in Hangzhou?", tools=[WEATHER],
                                    tool_choice={"type": "function", "name": "get_weather"})
    call = next(item for item in first.output if item.type == "function_call")
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("call_7", "get_weather", {"city": "Hangzhou"})
    sent = fake.chat_requests[-1].json()
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    fake.default = Reply(content="It is sunny")
    second = client.responses.create(model="up-openai", previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": "call_7", "output": "sunny, 24C"}])
    assert second.output_text == "It is sunny"
    assert sent_messages(fake) == [
        {"role": "user", "content": "weather in Hangzhou?"},
        {"role": "assistant", "content": None, "tool_calls": TOOL_CALLS},
        {"role": "tool", "tool_call_id": "call_7", "content": "sunny, 24C"}]


def test_streamed_function_call(client, fake):
    fake.default = Reply(content="", tool_calls=TOOL_CALLS)
    with client.responses.stream(model="up-openai", input="weather?", tools=[WEATHER]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds.count("response.function_call_arguments.delta") == 2
    assert "response.function_call_arguments.done" in kinds
    assert final.output[-1].type == "function_call" and json.loads(final.output[-1].arguments) == {"city": "Hangzhou"}


def test_previous_response_id_chain(client, fake):
    fake.default = Reply(content="first answer")
    one = client.responses.create(model="up-openai", input="turn one", instructions="old instructions")
    fake.default = Reply(content="second answer")
    two = client.responses.create(model="up-openai", input="turn two", previous_response_id=one.id)
    client.responses.create(model="up-openai", input="turn three", previous_response_id=two.id,
                            instructions="new instructions")
    assert sent_messages(fake) == [  # instructions are not carried over; the turns are
        {"role": "system", "content": "new instructions"},
        {"role": "user", "content": "turn one"}, {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "turn two"}, {"role": "assistant", "content": "second answer"},
        {"role": "user", "content": "turn three"}]
    assert client.responses.retrieve(two.id).previous_response_id == one.id


def test_store_false_keeps_nothing(client, fake):
    response = client.responses.create(model="up-openai", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


@pytest.fixture
def store_away(surfaces):
    """The stored responses table gone (a store failure) while the ledger still works."""
    with surfaces.gw.admin.store.engine.begin() as conn:
        conn.execute(sqlalchemy.text("ALTER TABLE stored_responses RENAME TO stored_responses_away"))
    yield
    with surfaces.gw.admin.store.engine.begin() as conn:
        conn.execute(sqlalchemy.text("ALTER TABLE stored_responses_away RENAME TO stored_responses"))


def test_a_billed_answer_is_served_when_it_cannot_be_stored(surfaces, client, fake, store_away):
    fake.default = Reply(content="kept anyway")
    started = time.time()
    response = client.responses.create(model="up-openai", input="store me")
    assert response.output_text == "kept anyway"
    fake.default = Reply(events=3)
    with client.responses.stream(model="up-openai", input="stream me") as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.completed" and kinds.count("response.output_text.delta") == 3
    for streamed, tokens in ((False, response.usage.output_tokens), (True, 3)):  # both billed
        def billed(r, streamed=streamed, tokens=tokens) -> bool:
            return (r.surface == "responses" and r.code is None and r.stream == streamed
                    and r.completion_tokens == tokens and r.created_at > started)
        assert wait_for_records(surfaces.gw.admin.store, surfaces.gw.env_id, 1, where=billed)


def test_another_environment_cannot_see_or_continue_a_response(surfaces, client, fake):
    mine = client.responses.create(model="up-openai", input="private")
    theirs = openai.OpenAI(base_url=surfaces.base(), api_key=surfaces.other_key, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.delete(mine.id)
    with pytest.raises(openai.BadRequestError) as caught:
        theirs.responses.create(model="up-openai", input="go on", previous_response_id=mine.id)
    assert "previous_response_id" in str(caught.value)
    assert client.responses.retrieve(mine.id).id == mine.id  # still there for its own environment


def test_delete_removes_it(client, fake):
    response = client.responses.create(model="up-openai", input="short-lived")
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)


def long_history(client, turns: int) -> str:
    """A chain of turns of ~50 tokens each on a model with a 300-token context (kept in it by "auto")."""
    previous = None
    for i in range(turns):
        previous = client.responses.create(model="up-small", input=f"turn {i}: " + "word " * 40,
                                           previous_response_id=previous, truncation="auto").id
    return previous


def test_truncation_disabled_refuses_past_the_context_and_says_by_how_much(client, fake):
    previous = long_history(client, 5)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="up-small", input="and now? " + "word " * 100, previous_response_id=previous)
    body = caught.value.body
    assert caught.value.status_code == 400 and "AI_MODEL_PARAM_INVALID" in str(caught.value.response.json())
    assert "over the model's context of 300 tokens" in body["message"]


def test_truncation_auto_drops_the_earliest_turns_and_keeps_the_newest(client, fake):
    previous = long_history(client, 5)
    sent_before = [m["content"] for m in sent_messages(fake)]
    assert str(sent_before[0]).startswith("turn 0:")  # the history so far still fitted
    newest = "and now? " + "word " * 30
    client.responses.create(model="up-small", input=newest, previous_response_id=previous, truncation="auto")
    texts = [m["content"] for m in sent_messages(fake)]
    assert texts[-1] == newest and not any(str(t).startswith("turn 0:") for t in texts)
    assert any(str(t).startswith("turn 4:") for t in texts)


def test_manual_compaction_then_continuing_from_the_new_id(surfaces, client, fake):
    fake.default = Reply(content="an answer")
    one = client.responses.create(model="up-openai", input="my name is Lin")
    two = client.responses.create(model="up-openai", input="I live in Wuhan", previous_response_id=one.id)
    fake.default = Reply(content="Lin lives in Wuhan")
    compacted = requests.post(f"{surfaces.base()}/responses/{two.id}/compact", headers=surfaces.gw.headers(),
                              json={"model": "up-openai"}).json()
    assert compacted["object"] == "response.compaction" and compacted["id"] != two.id
    assert compacted["output"][-1]["type"] == "compaction"
    summary_request = sent_messages(fake)
    assert "my name is Lin" in summary_request[-1]["content"]  # the model read the conversation to summarize
    fake.default = Reply(content="fine")
    client.responses.create(model="up-openai", input="where do I live?", previous_response_id=compacted["id"])
    assert sent_messages(fake) == [
        {"role": "user", "content": "Summary of the conversation so far:\nLin lives in Wuhan"},
        {"role": "user", "content": "where do I live?"}]
    sdk = client.responses.compact(model="up-openai", previous_response_id=two.id)  # the SDK's own path
    assert sdk.object == "response.compaction" and sdk.output[-1].type == "compaction"


def test_automatic_compaction_above_the_threshold(client, fake):
    fake.default = Reply(content="noted")
    one = client.responses.create(model="up-openai", input="first: " + "detail " * 60)
    fake.default = Reply(content="a short summary")
    client.responses.create(model="up-openai", input="next question", previous_response_id=one.id,
                            context_management=[{"type": "compaction", "compact_threshold": 40}])
    requests_sent = [r.json()["messages"] for r in fake.chat_requests[-2:]]
    assert "first: detail" in requests_sent[0][-1]["content"]  # the summary request
    assert requests_sent[1] == [
        {"role": "user", "content": "Summary of the conversation so far:\na short summary"},
        {"role": "user", "content": "next question"}]


def test_a_failure_mid_stream(client, fake):
    fake.default = Reply(events=5, error_after=2)
    kinds = []
    with pytest.raises(openai.APIError) as caught:
        with client.responses.stream(model="up-openai", input="hello") as stream:
            for event in stream:
                kinds.append(event.type)
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.failed"
    assert "response.completed" not in kinds and caught.value.message


def test_errors_before_the_answer(surfaces, client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="up-openai", input="x", truncation="sometimes")  # type: ignore[arg-type]
    assert caught.value.body["code"] == "AI_MODEL_PARAM_INVALID"
    reply = requests.post(surfaces.base() + "/responses", headers=surfaces.gw.headers(), json={"input": "x"})
    assert reply.status_code == 400 and reply.json()["code"] == "AI_MODEL_PARAM_REQUIRED"


@pytest.mark.parametrize("output", [[1], [{"text": 5}], [{"type": "input_text", "text": 5}], 7])
@pytest.mark.parametrize("route", ["/responses", "/responses/compact"])
def test_a_malformed_function_call_output_is_refused_not_a_500(surfaces, output, route):
    items = [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "c1", "output": output}]
    reply = requests.post(surfaces.base() + route, headers=surfaces.gw.headers(),
                          json={"model": "up-openai", "input": items})
    assert reply.status_code == 400 and reply.json()["code"] == "AI_MODEL_PARAM_INVALID"


@pytest.mark.parametrize("fields", [{"previous_response_id": {"a": 1}}, {"previous_response_id": ["r"]},
                                    {"previous_response_id": "r" * 65}, {"previous_response_id": "resp_\x00"},
                                    {"previous_response_id": "resp_1", "model": {"a": 1}},
                                    {"previous_response_id": "resp_1", "model": "up\nopenai"}])
def test_compact_checks_its_ids_before_storage(surfaces, fields):
    reply = requests.post(surfaces.base() + "/responses/compact", headers=surfaces.gw.headers(),
                          json={"model": "up-openai", **fields})
    assert reply.status_code == 400 and reply.json()["code"] == "AI_MODEL_PARAM_INVALID"


def test_usage_is_recorded_under_the_responses_surface(surfaces, client, fake):
    response = client.responses.create(model="up-openai", input="count me")
    rows = wait_for_records(surfaces.gw.admin.store, surfaces.gw.env_id, 1,
                            where=lambda r: r.surface == "responses" and r.created_at and r.model == "up-openai")
    assert rows and all(r.surface == "responses" for r in rows)
    assert any((r.prompt_tokens, r.completion_tokens) == (response.usage.input_tokens, response.usage.output_tokens)
               for r in rows)
