"""The one stream pump: a started stream (any surface's) written to the client as it comes, a batch (what
one upstream read brought) in one write, ended by the surface's own tail: its finish events, or one failure
event when the stream broke after its 200 (an upstream failure, the shutdown deadline, a fault inside the
gateway). The stream is closed, and so metered, however it ends; a client that left just stops it."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

from cbgate.core.metering import Meter
from cbgate.core.shutdown import ShutdownDeadline
from cbgate.errors import CloudBaseError, InternalError
from cbgate.http.exchange import Exchange
from cbgate.protocol import sse
from cbgate.protocol.surface import StreamRender

log = logging.getLogger("cbgate.http")


class Source(Protocol):
    """What the pump drains: items a surface's render understands (canonical chunks, or a surface's own
    typed events), one at a time or in batches (lists: a model stream's, one per upstream read), the meter that
    records the request, and a close that settles that meter."""
    meter: Meter

    def __aiter__(self) -> AsyncIterator[Any]: ...

    async def aclose(self) -> None: ...


async def pump(ex: Exchange, source: Source, render: StreamRender, deadline: ShutdownDeadline,
               after: Callable[[dict], Awaitable[None]] | None = None,
               headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Write `source` as `render` frames it. `deadline` is the process's shutdown deadline, which may cut
    the stream; `after` runs with the render's `final` answer once the stream finished whole, before the
    response ends (so the answer is stored by the time the client sees the end). `headers` go out beside the
    event-stream ones (MCP's session id)."""
    # A batch's events leave in one write, and the server protocol joins the writes of one loop turn, so the
    # head leaves with the first events, and a stream that arrived whole leaves whole. No task of its own: a
    # pump task with a queue (issue 17's profile) cost more per stream than it saved.
    head = render.start()  # before the first feed: a render numbers its events from here
    feed = render.feed
    feed_batch = getattr(render, "feed_batch", None) or (lambda batch: b"".join([feed(item) for item in batch]))
    untrack = deadline.track(source.meter)
    finished = False
    try:
        # in the try: the stream is closed (and metered) come what may
        await ex.start(200, sse.SSE_HEADERS + list(headers))
        async for item in source:
            events = feed_batch(item) if type(item) is list else feed(item)
            if head:
                events, head = head + events, b""
            if events:  # a chunk that renders no event (a surface's bookkeeping) costs no write
                await ex.send({"type": "http.response.body", "body": events, "more_body": True})
        tail = head + render.finish()
        finished = True
    except CloudBaseError as err:
        tail = head + render.failure(err)
    except asyncio.CancelledError:
        if source.meter.cut is None:
            raise  # the client left
        asyncio.current_task().uncancel()  # the shutdown deadline: the client still gets told why
        tail = head + render.failure(source.meter.cut)
    except Exception:
        log.exception("stream %s failed", ex.request_id)
        tail = head + render.failure(InternalError("the stream failed inside the gateway"))
    finally:
        untrack()
        await source.aclose()
    if finished and after is not None:
        await after(getattr(render, "final", None))
    await ex.send({"type": "http.response.body", "body": tail, "more_body": False})
