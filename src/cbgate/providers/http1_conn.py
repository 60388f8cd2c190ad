"""One HTTP/1.1 connection to an upstream, one exchange at a time: the request goes out in one write, the
answer is parsed by httptools as it arrives, and readers wait on it with a deadline (one timer per wait
that actually waits, none per buffered chunk).

Every failure is one of this module's exceptions (`HTTPClientError` and its subclasses); nothing from
httptools, ssl or the socket escapes, so the one mapping to our errors (`upstream_errors`) sees them all.
"""
from __future__ import annotations

import asyncio
import zlib
from collections import deque
from typing import Callable

import httptools

HIGH_WATER = 256 * 1024  # buffered answer bytes before the socket is paused (a reader that lags)


class HTTPClientError(Exception):
    """Everything the upstream HTTP client raises."""


class ConnectError(HTTPClientError):
    """No connection: refused, unreachable, a name that does not resolve, a failed TLS handshake."""


class ConnectTimeout(ConnectError):
    """The connection was not made within the connect timeout."""


class ConnectionClosed(HTTPClientError):
    """The upstream closed the connection before it sent a status line (often a pooled connection it had
    already closed on its side)."""


class BodyIncomplete(HTTPClientError):
    """The connection ended (closed or reset) in the middle of an answer."""


class ProtocolError(HTTPClientError):
    """An answer that is not HTTP/1.1 as we read it, a body we cannot decode, or a request we refuse to send."""


class ReadTimeout(HTTPClientError):
    """A deadline passed while waiting for the answer; the message says which wait (set by the caller)."""


class ClientClosed(HTTPClientError):
    """The client is not started, or was closed."""


class Connection(asyncio.Protocol):
    """The protocol object of one socket; also httptools' callback target for the exchange under way."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[Connection], None]):
        self.loop = loop
        self.on_lost = on_lost  # the pool forgets the connection when it goes
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.key: tuple = ()
        # One timer per connection, kept armed across waits and exchanges (see _wait): making and cancelling a
        # timer for every wait cost ~2.4 us under uvloop.
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0  # the loop time the timer fires at
        self.wait_until: float | None = None  # the deadline of the wait under way (None: none, or no deadline)
        self._reset()

    def _reset(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.framed = False  # a Content-Length or Transfer-Encoding header came
        self.head_done = False
        self.done = False
        self.keep_alive = False
        self.until_close = False  # a body without length or chunking: it ends when the connection does
        self.got_bytes = False
        self.error: HTTPClientError | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future | None = None

    # -- the exchange --

    def send(self, data: bytes) -> None:
        """Start an exchange: write the whole request (head and body)."""
        self._reset()
        self.parser = httptools.HttpResponseParser(self)
        self.transport.write(data)

    @property
    def reusable(self) -> bool:
        return self.done and self.keep_alive and not self.closed and not self.chunks

    async def wait_head(self, deadline: float | None, what: str) -> None:
        while not self.head_done:
            if self.error is not None:
                raise self.error
            await self._wait(deadline, what)

    async def next_chunk(self, deadline: float | None, what: str) -> bytes:
        """The answer's next raw body bytes (all that is buffered, joined); b"" when it is complete."""
        while True:
            chunks = self.chunks
            if chunks:
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self.buffered = 0
                if self.paused and not self.closed:
                    self.paused = False
                    self.transport.resume_reading()
                return data
            if self.done:
                return b""
            if self.error is not None:
                raise self.error
            await self._wait(deadline, what)

    async def _wait(self, deadline: float | None, what: str) -> None:
        """Wait for the parser to say something, until the loop time `deadline`. The connection's timer is only
        made (or moved) when it would fire after the deadline; one that fires early, for an earlier wait's
        deadline, sets itself again for this one (`_on_timer`), so a wait ends at its deadline all the same."""
        waiter = self.waiter = self.loop.create_future()
        self.wait_until = deadline
        if deadline is not None and (self.timer is None or self.timer_at > deadline):
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at, self.timer = deadline, self.loop.call_at(deadline, self._on_timer)
        try:
            if not await waiter:
                raise ReadTimeout(what)
        finally:
            self.waiter = self.wait_until = None

    def _on_timer(self) -> None:
        self.timer = None
        until, waiter = self.wait_until, self.waiter
        if until is None or waiter is None or waiter.done():
            return  # no wait with a deadline now: the next one sets the timer again
        if self.timer_at >= until:  # set for this wait's deadline: it has come
            waiter.set_result(False)
        else:  # set for an earlier wait's deadline
            self.timer_at, self.timer = until, self.loop.call_at(until, self._on_timer)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._stop_timer()
            if self.transport is not None:
                self.transport.close()
            self.on_lost(self)

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.parser is None or self.done:  # nothing asked: an idle connection speaking is not reused
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"unreadable HTTP answer: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed = self.closed
        self.closed = True
        self._stop_timer()
        if self.parser is not None and not self.done and self.error is None:
            if not self.head_done:
                self.error = (ConnectionClosed("the upstream closed the connection") if not self.got_bytes
                              else BodyIncomplete("the connection ended inside the answer's head"))
            elif self.until_close and exc is None:
                self.done = True
            else:
                why = f"{type(exc).__name__}: {exc}" if exc is not None else "connection closed"
                self.error = BodyIncomplete(f"the answer ended early ({why})")
        self._wake()
        if not was_closed:
            self.on_lost(self)

    def pause_writing(self) -> None:  # a request body larger than the socket buffer: the transport buffers it
        pass

    def resume_writing(self) -> None:
        pass

    def _fail(self, error: HTTPClientError) -> None:
        self.error = error
        self._wake()
        self.close()

    # -- httptools callbacks --

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))
        if len(name) in (14, 17) and name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self.raw_headers = []
            self.framed = False
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        self.until_close = not self.framed and status not in (204, 304)
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.head_done:  # the end of an interim answer
            return
        self.done = True
        self._wake()


class Response:
    """An answer whose head has arrived. Read its body with `read()` or `next_chunk()`, then `release()`
    (back to the pool when complete) or `close()` (the connection goes); both may be called again."""

    __slots__ = ("status", "content_type", "_raw", "_headers", "_conn", "_release", "_decoder")

    def __init__(self, conn: Connection, release: Callable[[Connection, bool], None]):
        self._conn: Connection | None = conn
        self._release = release
        self.status = conn.status
        self._raw = conn.raw_headers
        self._headers: dict[str, str] | None = None
        content_type = encoding = None
        for name, value in self._raw:  # the two the body's reading needs; the rest only on demand
            if len(name) == 12 and name.lower() == b"content-type":
                content_type = value
            elif len(name) == 16 and name.lower() == b"content-encoding":
                encoding = value.decode("latin-1")
        self.content_type = (content_type.partition(b";")[0].strip().lower().decode("latin-1")
                             if content_type else "")
        self._decoder = _decoder(encoding) if encoding else None

    @property
    def headers(self) -> dict[str, str]:
        """Lower-case names; repeated headers joined with ", "."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for name, value in self._raw:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            self._headers = headers
        return self._headers

    async def next_chunk(self, deadline: float | None = None, what: str = "sent nothing in time") -> bytes:
        """The next body bytes (decoded); b"" at the end."""
        conn = self._conn
        if conn is None:
            return b""
        while True:
            data = await conn.next_chunk(deadline, what)
            decoder = self._decoder
            if decoder is None:
                return data
            try:
                data = decoder.decompress(data) if data else decoder.flush()
            except zlib.error as exc:
                raise ProtocolError(f"the answer's {self.headers.get('content-encoding')} body cannot be "
                                    f"decoded: {exc}") from None
            if data or conn.done:
                return data

    async def read(self, deadline: float | None = None, what: str = "sent no whole answer in time") -> bytes:
        parts = []
        while True:
            data = await self.next_chunk(deadline, what)
            if not data:
                return b"".join(parts)
            parts.append(data)

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._release(conn, conn.reusable)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._release(conn, False)

    def __del__(self):  # a response dropped unreleased (a bug) must not hold its pool slot for ever
        if self._conn is not None:
            self.close()


class _Deflate:
    """`deflate` as servers send it: zlib-wrapped as the RFC says, or raw as some do."""

    def __init__(self):
        self._inner = None

    def decompress(self, data: bytes) -> bytes:
        if self._inner is None:
            wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return self._inner.decompress(data)

    def flush(self) -> bytes:
        return self._inner.flush() if self._inner is not None else b""


def _decoder(encoding: str | None):
    if not encoding or encoding.strip().lower() == "identity":
        return None
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _Deflate()
    raise ProtocolError(f"the answer is encoded as {encoding[:40]!r}, which was not asked for")
