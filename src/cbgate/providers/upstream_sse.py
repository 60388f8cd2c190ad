"""Reading an upstream's server-sent events: split network reads into (event name, data) pairs,
with the first-byte and idle timeouts, and failures mapped to our errors."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

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


async def read_events(response: Response, endpoint: Endpoint, first_byte_at: float,
                      idle: float) -> AsyncIterator[list[Event]]:
    """Yield the events of each network read, in order. The first must come by the loop time
    `first_byte_at`; after that, no more than `idle` seconds may pass between reads."""
    loop = asyncio.get_running_loop()
    pending = b""
    deadline, what = first_byte_at, "sent no first event in time"
    quiet = f"went quiet for {idle:g}s"
    while True:
        try:
            data = await response.next_chunk(deadline, what)
        except CLIENT_ERRORS as exc:
            raise upstream_failure(endpoint, exc) from None
        if not data:
            if pending.strip():
                event = _parse_block(pending.strip(b"\n"))
                if event is not None:
                    yield [event]
            return
        deadline, what = loop.time() + idle, quiet
        if data.find(b"\r") >= 0:
            data = data.replace(b"\r\n", b"\n")
        pending += data
        if pending.find(b"\n\n") < 0:
            continue
        *blocks, pending = pending.split(b"\n\n")
        # the usual one-line `data: ` event inline (a call less per event), anything else by the general parse
        events = [(None, block[6:]) if block[:6] == b"data: " and block.find(b"\n") < 0 else _parse_block(block)
                  for block in blocks]
        if None in events:  # blocks without data (comments, keep-alives)
            events = [e for e in events if e is not None]
        if events:
            yield events
