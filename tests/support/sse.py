"""Reading an SSE response the way a client does."""
from __future__ import annotations

import json

import requests


def read_events(response: requests.Response) -> list:
    """Each `data:` payload in order: dicts for JSON events, the string "[DONE]" for the end marker."""
    events = []
    for line in response.iter_lines(decode_unicode=False):
        if not line.startswith(b"data: "):
            assert line == b"", f"unexpected SSE line {line!r}"
            continue
        payload = line[len(b"data: "):]
        events.append("[DONE]" if payload == b"[DONE]" else json.loads(payload.decode("utf-8")))
    return events


def deltas(events: list) -> list[str]:
    return [e["choices"][0]["delta"].get("content", "") for e in events
            if isinstance(e, dict) and e.get("choices")]
