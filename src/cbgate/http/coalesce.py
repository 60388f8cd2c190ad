"""Coalesced stream writes: a pump task pulls a chunk stream while the writer sends, in one socket
write, everything that piled up since its last send. The events of one upstream read (or a burst of
tokens) then cost one write instead of one each; a stream that trickles still goes out event by event,
because the writer wakes as soon as the pump waits for the network.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

MAX_PENDING = 64  # framed events held for a slow client before the pump stops pulling (backpressure)


class CoalescedChunks:
    def __init__(self, chunks: AsyncIterator, frame: Callable[[object], bytes]):
        self.chunks = chunks
        self.frame = frame
        self.pending: list[bytes] = []
        self.error: BaseException | None = None
        self.finished = False
        self._ready = asyncio.Event()  # set by the pump: something to send, or the end
        self._room = asyncio.Event()  # set by the writer: the pump may pull again
        self._pump = asyncio.create_task(self._pull(), name="cbgate-stream-pump")

    async def _pull(self) -> None:
        frame, ready = self.frame, self._ready
        try:
            async for chunk in self.chunks:
                framed = frame(chunk)
                if not framed:  # a chunk that renders no event (a surface's bookkeeping) costs no write
                    continue
                pending = self.pending  # the writer swaps in a new list as it takes the batch
                pending.append(framed)
                # the writer clears `_ready` only as it empties `pending`: set, it stays set until then
                if len(pending) == 1:
                    ready.set()
                if len(pending) >= MAX_PENDING:
                    self._room.clear()
                    await self._room.wait()
        except BaseException as exc:  # handed to the writer, after the events that came before it
            self.error = exc
        finally:
            self.finished = True
            self._ready.set()

    async def batches(self) -> AsyncIterator[bytes]:
        """The framed events, joined per wake-up; raises what ended the stream, if anything did."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, self.pending = self.pending, []
            self._room.set()
            if batch:
                yield b"".join(batch) if len(batch) > 1 else batch[0]
            if self.finished and not self.pending:
                if self.error is not None:
                    raise self.error
                return

    async def aclose(self) -> None:
        """Stop the pump (a client gone, a failed write), then close the stream it pulled."""
        if not self._pump.done():
            self._pump.cancel()
            await asyncio.wait([self._pump])  # its own CancelledError stays inside it
        await self.chunks.aclose()
