"""The send-message body, both shapes, validated once into an AgentRun with canonical chat messages."""
import pytest

from cbgate.errors import AgentInvalidParam
from cbgate.protocol.agent_request import AGUI, LEGACY, parse_send_message


def test_ag_ui_input_becomes_canonical_messages_and_tools():
    run = parse_send_message({
        "threadId": "t-1", "runId": "r-1", "state": {}, "forwardedProps": {},
        "messages": [{"id": "1", "role": "user", "content": "weather in Paris?"},
                     {"id": "2", "role": "assistant", "content": "",
                      "toolCalls": [{"id": "c1", "type": "function",
                                     "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                     {"id": "3", "role": "tool", "toolCallId": "c1", "content": "sunny"},
                     {"id": "4", "role": "developer", "content": [{"type": "text", "text": "be brief"}]}],
        "tools": [{"name": "weather", "description": "the weather", "parameters": {"type": "object"}}],
        "context": [{"description": "city", "value": "Paris"}]})
    assert (run.shape, run.thread_id, run.run_id, run.thread_given) == (AGUI, "t-1", "r-1", True)
    assert run.messages[1]["tool_calls"][0]["function"] == {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}
    assert run.messages[2] == {"role": "tool", "content": "sunny", "tool_call_id": "c1"}
    assert run.messages[3] == {"role": "system", "content": "be brief"}
    assert run.tools[0]["function"]["name"] == "weather" and run.context == [{"description": "city", "value": "Paris"}]


def test_legacy_body_appends_msg_to_history_and_names_no_thread_without_conversation_id():
    run = parse_send_message({"botId": "agent-x", "msg": "and then?",
                              "history": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
    assert run.shape == LEGACY and not run.thread_given and run.thread_id.startswith("conv-")
    assert [m["content"] for m in run.messages] == ["hi", "yo", "and then?"]
    assert parse_send_message({"msg": "x", "conversationId": "c-9"}).thread_id == "c-9"


@pytest.mark.parametrize("body, field", [
    ({}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "toolCallId"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "url": "x"}]}]}, "messages[0].content"),
    ({"messages": [], "tools": [{"name": ""}]}, "tools[0].name"),
    ({"messages": [], "threadId": "a\x1bb"}, "threadId"),
    ({"msg": ""}, "msg"),
    ({"msg": "x", "history": [{"role": "tool", "content": "x"}]}, "history[0].role"),
])
def test_bad_bodies_are_agent_invalid_param_naming_the_field(body, field):
    with pytest.raises(AgentInvalidParam) as caught:
        parse_send_message(body)
    assert caught.value.code == "AGENT_INVALID_PARAM" and field in caught.value.message
