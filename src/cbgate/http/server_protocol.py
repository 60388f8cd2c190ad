"""The gateway's HTTP/1.1 server protocol, in uvicorn's `http` slot: uvicorn keeps the listening sockets,
the workers, lifespan, signals and graceful shutdown; this class serves each connection, and
`request_cycle.py` each request on it.

It replaced uvicorn's own httptools protocol (issue 17), which cost every request two socket writes (head,
then body), two timers made and cancelled, an event, a proxy-headers middleware the gateway never read, and
a task watching for the client's disconnect. Here:
- the request is parsed by httptools, as before, into the same ASGI scope;
- one timer a connection enforces both time limits: a request's headers must be complete within
  `CBGATE_HEADER_TIMEOUT` seconds (default 10) of its first byte (or of the connection, for the first
  request), and an idle kept-alive connection is closed after uvicorn's `timeout_keep_alive`. A request
  moves a deadline; the timer, when it fires, re-arms itself for the deadline it finds, so a busy
  connection makes no timer per request. Bodies are not timed here: the routes read them under their
  own bounds;
- writes made in one turn of the event loop leave in one write (`write_soon`), and the end of a response
  leaves at once with whatever was queued before it (`write_now`);
- pipelined requests wait their turn, reading paused meanwhile; a request that asks to upgrade the
  connection is answered as plain HTTP and the connection then closed.
"""
from __future__ import annotations

import asyncio
import os
import urllib.parse
from collections import deque

import httptools

from cbgate.http.request_cycle import RequestCycle

DEFAULT_HEADER_TIMEOUT = 10.0
MAX_HEADER_TIMEOUT = 3600.0
BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
               b"content-length: 29\r\nconnection: close\r\n\r\nInvalid HTTP request received.")


def header_timeout(env: dict[str, str] | os._Environ = os.environ) -> float:
    """Seconds from CBGATE_HEADER_TIMEOUT; ValueError saying why when it is not a usable number."""
    raw = env.get("CBGATE_HEADER_TIMEOUT")
    if raw is None or raw.strip() == "":
        return DEFAULT_HEADER_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_HEADER_TIMEOUT:
        raise ValueError(f"CBGATE_HEADER_TIMEOUT must be a number of seconds above 0 and at most "
                         f"{MAX_HEADER_TIMEOUT:g}, not {raw!r}")
    return value


class GatewayProtocol(asyncio.Protocol):
    """Pass as uvicorn's `http` (a class importable by name, so `--workers` processes get it too)."""

    def __init__(self, config, server_state, app_state: dict, _loop: asyncio.AbstractEventLoop | None = None):
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.app_state = app_state
        self.root_path = config.root_path
        self.keep_alive_seconds = config.timeout_keep_alive
        self.header_seconds = header_timeout()  # workers are new processes: each reads the environment
        self.parser = httptools.HttpRequestParser(self)
        try:  # answer the first of pipelined requests even when the client closes after sending them
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        except AttributeError:  # httptools < 0.6.3
            pass
        self.transport: asyncio.Transport | None = None
        self.server = self.client = None
        self.scheme = "http"
        self.out: list[bytes] = []  # written at the end of this turn of the loop
        self.read_paused = False
        self.write_paused = False
        self.writable: asyncio.Future | None = None
        self.deadline: float | None = None  # when the connection is closed unless a request moves it
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.active: RequestCycle | None = None  # the request being answered
        self.parsing: RequestCycle | None = None  # the request the parser is reading
        self.waiting: deque[RequestCycle] = deque()  # pipelined requests read before their turn
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.expect_100 = False
        self._defaults_from = None
        self._defaults = b""

    # -- the connection

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.server_state.connections.add(self)
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        if transport.get_extra_info("sslcontext"):
            self.scheme = "https"
        self._idle_for(self.header_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self.out = []
        self.deadline = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for cycle in (self.active, *self.waiting):
            if cycle is not None:
                cycle.lost()
        if self.parsing is not None and self.parsing is not self.active and self.parsing not in self.waiting:
            self.parsing.lost()
        self.waiting.clear()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.parser = None

    def eof_received(self) -> None:
        pass  # the transport then closes, as uvicorn's protocol does

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # answered as plain HTTP (on_headers_complete), then the connection is closed
        except httptools.HttpParserError:
            self.write_now(BAD_REQUEST)
            self.close()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close when idle, else after the response being sent."""
        if self.active is None:
            self.close()
        else:
            self.active.keep_alive = False
            for cycle in self.waiting:
                cycle.keep_alive = False

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._flush()
            self.transport.close()

    # -- time limits: one timer, moved lazily

    def _idle_for(self, seconds: float) -> None:
        self.deadline = when = self.loop.time() + seconds
        if self.timer is None or when < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = when
            self.timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        if self.deadline is None:
            return  # a request is being answered; the next deadline arms the timer again
        if self.loop.time() >= self.deadline:
            self.close()
        else:
            self.timer_at = self.deadline
            self.timer = self.loop.call_at(self.deadline, self._on_timer)

    # -- reading: httptools calls these

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.expect_100 = False
        if self.active is None:
            self._idle_for(self.header_seconds)  # a kept-alive connection's next request gets the same time

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace, which RFC 9110 excludes
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100 = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        url = httptools.parse_url(self.url)
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        version = parser.get_http_version()
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": version,
            "server": self.server, "client": self.client, "scheme": self.scheme,
            "method": parser.get_method().decode("ascii"), "root_path": self.root_path,
            "path": self.root_path + path, "raw_path": self.root_path.encode("ascii") + raw_path,
            "query_string": url.query or b"", "headers": self.headers,
        }
        if self.app_state:
            scope["state"] = self.app_state.copy()
        keep_alive = version != "1.0" and parser.should_keep_alive() and not parser.should_upgrade()
        cycle = self.parsing = RequestCycle(self, scope, keep_alive, self.expect_100)
        if self.active is None:
            self._begin(cycle)
        else:  # pipelined: its turn comes when the one before it is answered
            self.waiting.append(cycle)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        self.parsing.feed(body)

    def on_message_complete(self) -> None:
        self.parsing.ended()

    def _begin(self, cycle: RequestCycle) -> None:
        self.active = cycle
        self.deadline = None
        task = self.loop.create_task(cycle.run(self.app), name="cbgate-request")  # a name given is not
        # formatted per task ("Task-123"), which Python 3.11 does for every unnamed one
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def response_done(self, cycle: RequestCycle) -> None:
        self.server_state.total_requests += 1
        self.active = None
        if not cycle.keep_alive:
            self.close()
            return
        if self.transport.is_closing():
            return
        if self.waiting:
            self._begin(self.waiting.popleft())
            if not self.waiting:
                self.resume_reading()
        else:
            self._idle_for(self.keep_alive_seconds)

    # -- writing

    def default_head(self) -> bytes:
        """uvicorn's default headers (Date, Server), as bytes, made again when uvicorn changes them."""
        defaults = self.server_state.default_headers
        if defaults is not self._defaults_from:
            self._defaults_from = defaults
            self._defaults = b"".join(b"%s: %s\r\n" % (name, value) for name, value in defaults)
        return self._defaults

    def write_soon(self, data: bytes) -> None:
        if not self.out:
            self.loop.call_soon(self._flush)
        self.out.append(data)

    def write_now(self, data: bytes) -> None:
        if self.out:
            self.out.append(data)
            data = b"".join(self.out)
            self.out = []
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _flush(self) -> None:
        if self.out:
            self.write_now(b"")

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.waiting and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    async def drain(self) -> None:
        if self.write_paused and self.transport is not None and not self.transport.is_closing():
            if self.writable is None:
                self.writable = self.loop.create_future()
            await asyncio.shield(self.writable)


def _address(info) -> tuple[str, int] | None:
    if isinstance(info, (tuple, list)) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None
