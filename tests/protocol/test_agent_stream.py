"""The agent surface's renders, from canonical chunks: AG-UI events and legacy bot objects."""
import orjson

from cbgate.errors import ModelRequestFailed, RateLimitExceeded
from cbgate.protocol.agent_stream import AgUiStream, LegacyStream


def events(data: bytes) -> list:
    return [orjson.loads(line[6:]) if line != b"data: [DONE]" else "[DONE]"
            for line in data.split(b"\n\n") if line.startswith(b"data: ")]


def chunk(**delta) -> bytes:
    return orjson.dumps({"choices": [{"index": 0, "delta": delta}]})


def test_text_then_a_tool_call_closes_the_text_message_first_and_the_run_waits_for_the_client():
    render = AgUiStream("t", "r")
    out = render.start() + render.feed(chunk(content="Let me check. "))
    out += render.feed({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {
        "name": "lookup", "arguments": "{\"q\":"}}]}}]})
    out += render.feed(chunk(tool_calls=[{"index": 0, "function": {"arguments": "\"x\"}"}}]))
    out += render.feed({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})
    out += render.finish()
    got = events(out)
    assert [e["type"] for e in got] == ["RUN_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT",
                                        "TEXT_MESSAGE_END", "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_ARGS",
                                        "TOOL_CALL_END", "RUN_FINISHED"]
    assert got[-1]["outcome"]["pendingToolCallIds"] == ["c1"] and got[-1]["usage"][0]["totalTokens"] == 7
    assert render.final.tool_calls[0]["function"]["arguments"] == "{\"q\":\"x\"}"


def test_failures_are_run_error_with_the_agent_code_and_legacy_ends_without_done():
    assert events(AgUiStream("t", "r").failure(ModelRequestFailed("down")))[0] == {
        "type": "RUN_ERROR", "message": "down", "code": "AGENT_REQUEST_LLM_ERROR"}
    assert events(AgUiStream("t", "r").failure(RateLimitExceeded("slow down")))[0]["code"] == "EXCEED_RATELIMIT"
    legacy = LegacyStream("m", "req-1")
    out = legacy.feed(chunk(reasoning_content="hmm")) + legacy.feed(chunk(content="hi"))
    assert [(o["type"], o["finish_reason"]) for o in events(out)] == [("thinking", "continue"), ("text", "continue")]
    assert events(legacy.finish())[-1] == "[DONE]"
    assert "[DONE]" not in events(legacy.failure(ModelRequestFailed("down")))
