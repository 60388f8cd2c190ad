"""uvicorn's httptools protocol with a header-read timeout.

uvicorn closes idle keep-alive connections, but a connection that opens and sends part of a request's
headers (or nothing) was kept forever: a thousand of them held a thousand sockets. Here every request's
headers must be complete within `CBGATE_HEADER_TIMEOUT` seconds (default 10) of its first byte (or of the
connection, for the first request), or the connection is closed. Bodies are not timed here: the chat
route reads them under its own bounds.
"""
from __future__ import annotations

import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEADER_TIMEOUT = 10.0
MAX_HEADER_TIMEOUT = 3600.0


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


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """Pass as uvicorn's `http` (a class importable by name, so `--workers` processes get it too)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_seconds = header_timeout()  # workers are new processes: each reads the environment
        self.header_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # a keep-alive connection's next request: its headers get the same time

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self.header_timer = self.loop.call_later(self.header_seconds, self._headers_too_slow)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            self.transport.close()
