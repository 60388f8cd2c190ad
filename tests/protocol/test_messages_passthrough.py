"""An Anthropic upstream answering a Messages client: its events and its Message pass through as they
came (our message id, the client's model name), with no round trip through chat chunks, so nothing the
chat format has no field for (a signature, a citation, a server tool block) is lost or invented."""
import orjson

from cbgate.protocol.anthropic_messages import MESSAGES, parse_messages_request
from cbgate.protocol.chunks import NativeEvent

REQ = parse_messages_request({"model": "claude-of-the-client", "max_tokens": 64, "stream": True,
                              "messages": [{"role": "user", "content": "hi"}]})
UPSTREAM = [
    {"type": "message_start", "message": {"id": "msg_upstream", "type": "message", "role": "assistant",
                                          "model": "upstream-model", "content": [], "stop_reason": None,
                                          "usage": {"input_tokens": 9, "output_tokens": 1,
                                                    "cache_read_input_tokens": 4}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig-1"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1,
     "delta": {"type": "citations_delta", "citation": {"type": "char_location", "cited_text": "x"}}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
    {"type": "message_stop"},
]


def events_of(raw: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if block.strip():
            name, data = block.split("\n", 1)
            out.append((name.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return out


def test_an_anthropic_upstreams_events_reach_a_messages_client_as_they_came():
    stream = MESSAGES.stream(REQ, "req-1")
    raw = stream.start() + b"".join(stream.feed(NativeEvent("anthropic", e)) for e in UPSTREAM)
    raw += stream.feed({"choices": [], "usage": {"prompt_tokens": 13, "completion_tokens": 3}})  # the service's
    raw += stream.finish()
    events = events_of(raw)
    start = events[0][1]["message"]
    assert (start["id"], start["model"]) == ("msg_req-1", "claude-of-the-client")
    assert start["usage"] == UPSTREAM[0]["message"]["usage"]
    assert events[1:] == [(e["type"], e) for e in UPSTREAM[1:]]  # each once, unchanged, none added


def test_an_anthropic_upstreams_message_is_the_answer():
    message = {"id": "msg_upstream", "type": "message", "role": "assistant", "model": "upstream-model",
               "content": [{"type": "thinking", "thinking": "t", "signature": "sig-2"},
                           {"type": "text", "text": "hi", "citations": [{"type": "char_location"}]}],
               "stop_reason": "end_turn", "usage": {"input_tokens": 9, "output_tokens": 3}}
    body = MESSAGES.render(REQ, message, "req-2")
    assert body == {**message, "id": "msg_req-2", "model": "claude-of-the-client"}
