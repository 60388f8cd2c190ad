"""The wire renderers of the Messages and Responses surfaces over canonical chunks: block and item order,
indices, and what each closes with (pure functions, no gateway)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cbgate.errors import ModelRequestFailed
from cbgate.protocol import sse
from cbgate.protocol.anthropic_messages import MessageStreamRenderer, parse_messages_request, render_message
from cbgate.protocol.chat_response import ChunkFactory, Usage
from cbgate.protocol.responses_render import ResponseStreamRenderer
from cbgate.protocol.responses_request import items_to_messages, parse_responses_request

CHUNKS = ChunkFactory("m")
CALL = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":'}}
STREAM = [CHUNKS.chunk({"role": "assistant", "content": ""}), CHUNKS.chunk({"reasoning_content": "hmm"}),
          CHUNKS.chunk({"content": "Hi"}), CHUNKS.chunk({"content": "!"}), CHUNKS.chunk({"tool_calls": [CALL]}),
          CHUNKS.chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
          CHUNKS.chunk({}, "tool_calls"), CHUNKS.usage_chunk(Usage(9, 4, cache_read_tokens=3))]


def test_message_stream_blocks_in_order_with_usage_last():
    renderer = MessageStreamRenderer("m", "req1")
    events = [e for chunk in STREAM for e in renderer.feed(chunk)] + renderer.finish_events()
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    starts = [data["content_block"]["type"] for name, data in events if name == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    assert [d["index"] for n, d in events if n == "content_block_stop"] == [0, 1, 2]
    json_parts = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"
                  and d["delta"]["type"] == "input_json_delta"]
    assert "".join(json_parts) == '{"a": 1}'
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {"input_tokens": 6, "output_tokens": 4, "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 3}


def test_message_body_from_a_completion():
    message = {"role": "assistant", "content": "ok", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    body = render_message(CHUNKS.completion(message, "length", Usage(3, 2)), "req2")
    assert body["id"] == "msg_req2" and body["stop_reason"] == "max_tokens"
    assert [b["type"] for b in body["content"]] == ["text", "tool_use"] and body["usage"]["input_tokens"] == 3


def test_messages_request_into_the_canonical_one():
    req = parse_messages_request({"model": "m", "max_tokens": 5, "system": "sys", "stop_sequences": ["X"],
                                  "messages": [{"role": "user", "content": "hi"}]})
    assert req.messages == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    assert req.raw["stop"] == ["X"] and req.max_tokens == 5 and req.anthropic_body["system"] == "sys"


def test_responses_stream_items_and_failure():
    req = parse_responses_request({"model": "m", "input": "hi"})
    renderer = ResponseStreamRenderer("resp_1", req)
    events = renderer.start() + [e for chunk in STREAM for e in renderer.feed(chunk)]
    done, final = renderer.finish_events()
    events += done
    assert [e[1]["sequence_number"] for e in events] == list(range(len(events)))
    assert [item["type"] for item in final["output"]] == ["reasoning", "message", "function_call"]
    assert final["output"][2]["arguments"] == '{"a": 1}' and final["usage"]["input_tokens"] == 9
    failing = ResponseStreamRenderer("resp_2", req)
    names = [n for n, _ in failing.start() + failing.feed(STREAM[2])
             + failing.failure_events(ModelRequestFailed("broke"), "rq")]
    assert names[-2:] == ["response.failed", "error"]


def test_function_calls_of_one_turn_become_one_assistant_message():
    items = parse_responses_request({"model": "m", "input": [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "b", "name": "g", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "a", "output": "1"}]}).input_items
    messages = items_to_messages(items)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["a", "b"]


def test_a_replayed_assistant_turn_with_thinking_and_a_tool_call():
    req = parse_messages_request({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                                          {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                                     {"type": "text", "text": "and?"}]}]})
    assert req.messages[1] == {"role": "assistant", "content": None, "reasoning_content": "hmm", "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]}
    assert req.messages[2:] == [{"role": "tool", "tool_call_id": "t1", "content": "ok"},
                                {"role": "user", "content": "and?"}]


def test_a_chat_batch_frames_as_its_events_one_by_one():
    batch = [STREAM[0], b'{"choices":[]}', STREAM[2]]
    assert sse.events(batch) == b"".join(sse.event(chunk) for chunk in batch)
    assert sse.events([b"{}"]) == b"data: {}\n\n" and sse.events([]) == b""


def test_named_events_frame_as_each_event_alone():
    events = [("response.created", {"a": 1}), ("ping", {}), ("response.created", {"b": [2]})]
    assert sse.named_events(events) == b"".join(sse.named_event(name, data) for name, data in events)


def test_a_responses_batch_renders_as_its_chunks_one_by_one(monkeypatch):
    import itertools

    import cbgate.protocol.responses_render as render
    req = parse_responses_request({"model": "m", "input": "hi", "stream": True})

    def rendered(feed_all) -> bytes:
        ids = itertools.count()  # each side numbers its ids from 0: the same ids for the same items
        monkeypatch.setattr(render, "new_id", lambda prefix: f"{prefix}_{next(ids)}")
        stream = render.ResponsesStream(req, "req1")
        stream.renderer.created_at = 1
        return stream.start() + feed_all(stream) + stream.finish()

    by_one = rendered(lambda stream: b"".join(stream.feed(chunk) for chunk in STREAM))
    by_batch = rendered(lambda stream: stream.feed_batch(STREAM[:3]) + stream.feed_batch(STREAM[3:]))
    assert by_batch == by_one and b"response.completed" in by_one


_DELTAS = st.lists(st.tuples(st.sampled_from(["content", "reasoning_content"]), st.text(min_size=1, max_size=12)),
                   max_size=8)


@given(_DELTAS, st.booleans())
@settings(max_examples=300, deadline=None)
def test_a_framed_text_delta_is_the_bytes_its_event_frames_to(deltas, finishes):
    """Text deltas in a batch are framed without their event's dict: the bytes must be what the dict, encoded,
    frames to, whatever the text holds (quotes, escapes, controls, astral characters, a '%')."""
    req = parse_responses_request({"model": "m", "input": "hi", "stream": True})
    chunks = [CHUNKS.chunk({key: text}) for key, text in deltas] + ([CHUNKS.chunk({}, "stop")] if finishes else [])

    import cbgate.protocol.responses_render as render
    framed_side, by_dict_side = [], []
    for framed, out in ((True, framed_side), (False, by_dict_side)):
        ids = iter(range(100))
        original = render.new_id
        render.new_id = lambda prefix: f"{prefix}_{next(ids)}%d"
        try:
            r = ResponseStreamRenderer("resp_1", req, created_at=1)
            for chunk in chunks:
                r.feed_into(chunk, out, framed=framed)
            out += r.finish_events()[0]
        finally:
            render.new_id = original
    assert sse.named_events(framed_side) == sse.named_events(by_dict_side)
    assert any(type(e) is bytes for e in framed_side) == bool(deltas)
