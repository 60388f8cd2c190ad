"""One HTTP/1.1 request on a connection of the gateway's server protocol (`server_protocol.py`): its ASGI
`receive` and `send`.

What it does differently from uvicorn's cycle, for the hot path's sake (issue 17):
- the response's head is not written on its own: it leaves in one write with the body's first bytes (a
  `Content-Length` response's head waits for its body; any other head waits at most until the end of
  the current turn of the event loop), and a body's pieces sent in one turn leave in one write;
- the request's body is buffered as it arrives and handed over without an event per request: a small
  body that came with its headers is read without waiting at all;
- an app that will read no more of the body registers a callback for the client's disconnect
  (`scope["cbgate.on_disconnect"]`) instead of a task watching `receive()`; what is left of the body is
  then dropped as it arrives.
"""
from __future__ import annotations

import asyncio
import http
import logging
import re
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from cbgate.http.server_protocol import GatewayProtocol

log = logging.getLogger("uvicorn.error")

HIGH_WATER = 64 * 1024  # body bytes buffered before the connection stops reading until the app takes them
BAD_NAME = re.compile(rb'[\x00-\x1f\x7f()<>@,;:\[\]={} \t\\"]')  # RFC 9110 token characters only
BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # no line breaks or controls: no header injection
DISCONNECT = {"type": "http.disconnect"}


def headers_invalid(headers: list) -> bool:
    """Whether a name is not a token or a value holds a line break or a control: every name, and every
    value, checked in one search each, joined by a byte their rule allows."""
    return bool(BAD_NAME.search(b"a".join([name for name, _ in headers]))
                or BAD_VALUE.search(b"\t".join([value for _, value in headers])))


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}
INTERNAL_ERROR = (b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n"
                  b"content-length: 21\r\nconnection: close\r\n\r\nInternal Server Error")


class RequestCycle:
    __slots__ = ("conn", "scope", "body", "buffered", "more_body", "end_given", "waiter", "disconnected",
                 "keep_alive", "expect_100", "started", "complete", "chunked", "length_left", "head",
                 "no_body", "on_disconnect", "dropping")

    def __init__(self, conn: GatewayProtocol, scope: dict, keep_alive: bool, expect_100: bool):
        self.conn = conn
        self.scope = scope
        self.body: list[bytes] = []
        self.buffered = 0
        self.more_body = True
        self.end_given = False  # the receive() that said more_body=False has been answered
        self.waiter: asyncio.Future | None = None
        self.disconnected = False
        self.keep_alive = keep_alive
        self.expect_100 = expect_100
        self.started = False
        self.complete = False
        self.chunked = False
        self.length_left = 0
        self.head: bytes | None = None  # a Content-Length response's head, until its body goes with it
        self.no_body = False  # HEAD, 204, 304
        self.on_disconnect: Callable[[], object] | None = None
        self.dropping = False  # the app reads no more of the body: it is dropped as it comes
        scope["cbgate.on_disconnect"] = self.watch

    # -- the connection's side

    def feed(self, chunk: bytes) -> None:
        if self.complete or self.dropping:
            return
        self.body.append(chunk)
        self.buffered += len(chunk)
        if self.buffered > HIGH_WATER:
            self.conn.pause_reading()
        self._wake()

    def ended(self) -> None:
        self.more_body = False
        self._wake()

    def lost(self) -> None:
        """The client's connection is gone."""
        if self.complete:
            return
        self.disconnected = True
        self._wake()
        if self.on_disconnect is not None:
            callback, self.on_disconnect = self.on_disconnect, None
            callback()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def watch(self, callback: Callable[[], object] | None) -> None:
        """Call `callback` once if the client disconnects before the response is complete (None: forget
        it). The app reads no more of the request body from here on."""
        self.on_disconnect = callback
        self.dropping = True
        self.body, self.buffered = [], 0
        self.conn.resume_reading()

    # -- ASGI

    async def run(self, app) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            log.error("Exception in ASGI application\n", exc_info=exc)
            if not self.started and not self.disconnected:
                self.started = True
                self.conn.write_now(INTERNAL_ERROR)
                self.conn.close()
            elif not self.complete:
                self.conn.close()
        else:
            if not self.complete and not self.disconnected:
                log.error("ASGI callable returned without %s the response.",
                          "completing" if self.started else "starting")
                if not self.started:
                    self.conn.write_now(INTERNAL_ERROR)
                self.conn.close()
        finally:
            self.on_disconnect = None

    async def receive(self) -> dict:
        if self.expect_100:
            self.expect_100 = False
            self.conn.write_now(b"HTTP/1.1 100 Continue\r\n\r\n")
        while not (self.disconnected or self.complete or self.body or not (self.more_body or self.end_given)):
            self.conn.resume_reading()
            self.waiter = self.conn.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if self.disconnected or self.complete:
            return DISCONNECT
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body, self.buffered = [], 0
        if not self.more_body:
            self.end_given = True
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: dict) -> None:
        if self.conn.write_paused and not self.disconnected:
            await self.conn.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected ASGI message 'http.response.start', not {kind!r}")
            self._start(message["status"], message.get("headers", ()))
        elif self.complete:
            raise RuntimeError(f"ASGI message {kind!r} sent after the response was complete")
        elif kind != "http.response.body":
            raise RuntimeError(f"expected ASGI message 'http.response.body', not {kind!r}")
        else:
            self._body(message.get("body", b""), message.get("more_body", False))

    def _start(self, status: int, headers) -> None:
        headers = list(headers)
        if headers_invalid(headers):
            raise RuntimeError("Invalid HTTP header name or value.")
        lines = []
        length = None
        close = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length" and length is None:
                length = int(value)
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.chunked = True
            elif name == b"connection" and b"close" in [t.strip().lower() for t in value.split(b",")]:
                self.keep_alive = False
                close = True
            lines += (name, b": ", value, b"\r\n")
        parts = [STATUS_LINES[status], self.conn.default_head(), b"".join(lines)]
        if not self.keep_alive and not close:
            parts.append(b"connection: close\r\n")
        self.no_body = self.scope["method"] == "HEAD" or status in (204, 304)
        if length is not None and not self.chunked:
            self.length_left = length
        elif not self.no_body:
            self.chunked = True
            if length is None:
                parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        head = b"".join(parts)
        self.started = True  # only now: a refused header leaves the app's failure its 500
        self.expect_100 = False
        if length is not None and not self.chunked:
            self.head = head  # its body follows: one write for both
        else:
            self.conn.write_soon(head)

    def _body(self, body: bytes, more_body: bool) -> None:
        if self.no_body:
            data = b""
        elif self.chunked:
            data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more_body:
                data += b"0\r\n\r\n"
        else:
            if len(body) > self.length_left:
                raise RuntimeError("Response content longer than Content-Length")
            self.length_left -= len(body)
            data = body
        if self.head is not None:
            data, self.head = self.head + data, None
        if more_body:
            if data:
                self.conn.write_soon(data)
            return
        if self.length_left and not self.no_body:
            raise RuntimeError("Response content shorter than Content-Length")
        self.complete = True
        self.on_disconnect = None
        self.conn.write_now(data)
        self._wake()
        self.conn.response_done(self)
