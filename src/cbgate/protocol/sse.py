"""Server-sent events framing: `data: <json>` and a blank line; `[DONE]` only after success."""
from __future__ import annotations

import orjson

from cbgate.errors import CloudBaseError, error_body

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
DONE = b"data: [DONE]\n\n"


def event(chunk: dict | bytes) -> bytes:
    payload = chunk if isinstance(chunk, bytes) else orjson.dumps(chunk)
    return b"data: " + payload + b"\n\n"


def events(chunks: list[dict | bytes]) -> bytes:
    """A batch of chunks' `data:` events in one join (an event's own framing costs two concatenations)."""
    if not chunks:
        return b""
    return b"data: " + b"\n\ndata: ".join([c if isinstance(c, bytes) else orjson.dumps(c) for c in chunks]) + b"\n\n"


def error_event(err: CloudBaseError, request_id: str) -> bytes:
    """A failure after the first byte: the CloudBase error body as the last event, and no [DONE]."""
    return event(error_body(err, request_id))


def named_event(name: str, data: dict) -> bytes:
    """An event with its name line, as the Messages and Responses streams send them."""
    return head(name) + orjson.dumps(data) + b"\n\n"


_HEADS: dict[str, bytes] = {}  # an event name's framing up to its data (our renderers' few names)


def head(name: str) -> bytes:
    """A named event's framing up to its data: `event: <name>` and `data: `."""
    framing = _HEADS.get(name)
    if framing is None:
        framing = b"event: " + name.encode() + b"\ndata: "
        if len(_HEADS) < 256:  # a passed-through upstream's names could be anything: keep a bounded few
            _HEADS[name] = framing
    return framing


def named_events(events: list[tuple[str, dict] | bytes]) -> bytes:
    """Named events framed in one join (a Responses stream sends a score of them: each framed on its own
    cost four concatenations and an encode); an event given as bytes is already framed."""
    parts = []
    for event in events:
        if type(event) is bytes:
            parts.append(event)
        else:
            name, data = event
            parts += (head(name), orjson.dumps(data), b"\n\n")
    return b"".join(parts)
