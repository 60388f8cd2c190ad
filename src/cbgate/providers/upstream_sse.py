"""Reading an upstream's server-sent events: split network reads into (event name, data) pairs,
with the first-byte and idle timeouts, and failures mapped to our errors."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import aiohttp

from cbgate.errors import ModelRequestTimeout
from cbgate.providers.upstream_http import Endpoint, read_failure

Event = tuple[bytes | None, bytes]  # (event name or None, data payload)


def _parse_block(block: bytes) -> Event | None:
    if block.startswith(b"data: ") and b"\n" not in block:
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


async def read_events(response: aiohttp.ClientResponse, endpoint: Endpoint, first_byte_at: float,
                      idle: float) -> AsyncIterator[list[Event]]:
    """Yield the events of each network read, in order. The first must come by the loop time
    `first_byte_at`; after that, no more than `idle` seconds may pass between reads."""
    loop = asyncio.get_running_loop()
    content = response.content
    pending = b""
    deadline = first_byte_at
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                data = await content.readany()
        except TimeoutError:
            what = "sent no first event in time" if deadline == first_byte_at else f"went quiet for {idle:g}s"
            raise ModelRequestTimeout(f"upstream {endpoint.name} {what}") from None
        except aiohttp.ClientError as exc:
            raise read_failure(endpoint, exc) from None
        if not data:
            if pending.strip():
                event = _parse_block(pending.strip(b"\n"))
                if event is not None:
                    yield [event]
            return
        deadline = loop.time() + idle
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        pending += data
        if b"\n\n" not in pending:
            continue
        *blocks, pending = pending.split(b"\n\n")
        events = [e for e in map(_parse_block, blocks) if e is not None]
        if events:
            yield events
