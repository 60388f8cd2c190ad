"""Reading an upstream's server-sent events: split network reads into (event name, data) pairs,
with the first-byte and idle timeouts, and failures mapped to our errors."""
from __future__ import annotations

import asyncio

from cbgate.providers.http1_conn import Response
from cbgate.providers.upstream_errors import CLIENT_ERRORS, upstream_failure
from cbgate.providers.upstream_http import Endpoint

Event = tuple[bytes | None, bytes]  # (event name or None, data payload)


# `bytes.find(x) < 0` rather than `x not in bytes`: CPython's `in` first tries the operand as an integer (a
# byte value) and makes and drops a TypeError for every other operand: ~70 ns, several times an event.


def _parse_block(block: bytes) -> Event | None:
    if block.startswith(b"data: ") and block.find(b"\n") < 0:
        return None, block[6:]  # the usual one-line event, without the general parse
    name, data = None, []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            name = line[6:].strip()
        # comments (": keep-alive"), id: and retry: lines carry nothing we use
    if not data:
        return None
    return name, b"\n".join(data)


class EventReader:
    """An upstream's events, one network read at a time: `await reader.next()` is the next read's events, in
    order, or None once the answer ended. The first read must come by the loop time `first_byte_at`; after
    that, no more than `idle` seconds may pass between reads.

    A class, not an async generator: a generator's first step and its end each run the event loop's asyncgen
    hooks (a Python WeakSet's add, and its removal callback), and one left unfinished had to be closed by hand."""

    __slots__ = ("response", "endpoint", "loop", "deadline", "what", "idle", "quiet", "pending", "ended")

    def __init__(self, response: Response, endpoint: Endpoint, first_byte_at: float, idle: float):
        self.response = response
        self.endpoint = endpoint
        self.loop = asyncio.get_running_loop()
        self.deadline, self.what = first_byte_at, "sent no first event in time"
        self.idle = idle
        self.quiet = f"went quiet for {idle:g}s"
        self.pending = b""
        self.ended = False

    async def next(self) -> list[Event] | None:
        while not self.ended:
            try:
                data = await self.response.next_chunk(self.deadline, self.what)
            except CLIENT_ERRORS as exc:
                raise upstream_failure(self.endpoint, exc) from None
            if not data:
                self.ended = True
                if self.pending.strip():
                    event = _parse_block(self.pending.strip(b"\n"))
                    if event is not None:
                        return [event]
                return None
            self.deadline, self.what = self.loop.time() + self.idle, self.quiet
            if data.find(b"\r") >= 0:
                data = data.replace(b"\r\n", b"\n")
            pending = self.pending + data
            if pending.find(b"\n\n") < 0:
                self.pending = pending
                continue
            *blocks, self.pending = pending.split(b"\n\n")
            # the usual one-line `data: ` event inline (a call less per event), anything else by the general parse
            events = [(None, block[6:]) if block[:6] == b"data: " and block.find(b"\n") < 0 else _parse_block(block)
                      for block in blocks]
            if None in events:  # blocks without data (comments, keep-alives)
                events = [e for e in events if e is not None]
            if events:
                return events
        return None
