"""Kept-alive HTTP/1.1 connections to the upstreams, pooled per origin, and the one way a connection is made.

A guarded pool (tenants' URLs) asks the egress policy for every connection it makes and connects only to
the addresses the policy returned and checked (`EgressPolicy.resolve`): the check sees the host exactly
as the connection uses it, on every connect, IP literals included. Nothing is ever followed (redirects
are answers like any other), and a reused connection is one that was checked when it was made.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from dataclasses import dataclass

from yarl import URL

from cbgate.providers.http1_conn import (ClientClosed, ConnectError, ConnectTimeout, Connection, ProtocolError,
                                         ReadTimeout, Response)
from cbgate.providers.netguard import EgressPolicy

ACCEPT_ENCODING = b"gzip, deflate"  # what the client decodes (and what aiohttp asked for before it)


@dataclass(frozen=True, slots=True)
class Target:
    """Where one URL's requests go, and the request head that does not change between them."""
    key: tuple  # (scheme, host, port): the pool's origin
    host: str  # as the URL holds it (IDNA, no brackets): what is resolved and checked
    port: int
    tls: bool
    head: bytes  # request line and headers, without Content-Length and the final blank line


def _token(text: str, what: str) -> bytes:
    if any(c in text for c in "\r\n\0"):
        raise ProtocolError(f"a request {what} contains a line break or NUL and is not sent")
    return text.encode("latin-1", "strict") if text.isascii() else text.encode("utf-8")


def prepare(method: str, url: str, headers: dict[str, str], close: bool) -> Target:
    """The target of `url`, read as yarl reads it (as netguard's check does)."""
    try:
        parsed = URL(url)
        host, port, scheme = parsed.raw_host, parsed.port, parsed.scheme
    except (ValueError, TypeError, UnicodeError) as exc:
        raise ProtocolError(f"the upstream URL cannot be read: {exc}") from None
    if scheme not in ("http", "https") or not host or port is None:
        raise ProtocolError("the upstream URL needs http or https, a host and a port")
    names = {name.lower() for name in headers}
    lines = [f"{method} {parsed.raw_path_qs or '/'} HTTP/1.1", f"Host: {parsed.host_port_subcomponent}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if "accept" not in names:
        lines.append("Accept: */*")
    if "accept-encoding" not in names:
        lines.append("Accept-Encoding: " + ACCEPT_ENCODING.decode())
    if close:
        lines.append("Connection: close")
    head = b"".join(_token(line, "header") + b"\r\n" for line in lines)
    return Target((scheme, host, port), host, port, scheme == "https", head)


def request_bytes(target: Target, body: bytes | None) -> bytes:
    if body is None:
        return target.head + b"\r\n"
    return b"%sContent-Length: %d\r\n\r\n%s" % (target.head, len(body), body)


class Pool:
    """Idle connections per origin (the newest reused first), at most `limit` in use at once."""

    def __init__(self, policy: EgressPolicy | None, names, limit: int = 256, keepalive: float | None = 30.0,
                 ssl_context: ssl.SSLContext | None = None):
        self.policy = policy  # None: a trusted pool, connecting wherever the name service says
        self.names = names  # the guarded pool's name service (aiohttp's resolver interface)
        self.limit = limit
        self.keepalive = keepalive  # seconds an idle connection is kept; None: one connection per request
        self.ssl_context = ssl_context
        self.loop = asyncio.get_running_loop()
        self._idle: dict[tuple, list[Connection]] = {}
        self._all: set[Connection] = set()
        self._in_use = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def send(self, target: Target, data: bytes, deadline: float, connect_timeout: float,
                   what: str) -> Response:
        """Write a request and return its answer once the head has arrived, by the loop time `deadline`."""
        if self._closed:
            raise ClientClosed("the upstream client is not started")
        if self._in_use >= self.limit:
            await self._slot(deadline, what)
        self._in_use += 1
        conn = None
        try:
            conn = self._reuse(target.key) or await self._connect(target, deadline, connect_timeout, what)
            conn.send(data)
            await conn.wait_head(deadline, what)
            return Response(conn, self._release)
        except BaseException:
            if conn is not None:
                conn.close()
            self._give_back()
            raise

    def _reuse(self, key: tuple) -> Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest = self.loop.time() - self.keepalive
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.idle_since > oldest:
                return conn
            conn.close()
        return None

    async def _connect(self, target: Target, deadline: float, connect_timeout: float, what: str) -> Connection:
        if self.policy is not None:
            answers = await self.policy.resolve(target.host, target.port, self.names)
            addresses = [(a["host"], a["port"], a["family"]) for a in answers]
        else:
            addresses = [(target.host, target.port, socket.AF_UNSPEC)]
        tls = self.ssl_context if target.tls else None
        failure: BaseException | None = None
        for host, port, family in addresses:
            limit = min(self.loop.time() + connect_timeout, deadline)
            conn = Connection(self.loop, self._lost)
            try:
                async with asyncio.timeout_at(limit):
                    await self._open(conn, host, port, family, tls, target.host if tls else None)
            except TimeoutError:
                conn.close()
                if limit >= deadline:
                    raise ReadTimeout(what) from None
                failure = ConnectTimeout(f"connecting to {host}:{port} took longer than {connect_timeout:g}s")
                continue
            except (OSError, ValueError) as exc:  # refused, unreachable, no such name, TLS (ssl.SSLError)
                conn.close()
                failure = ConnectError(f"cannot connect to {target.host}:{port}: {exc}")
                continue
            conn.key = target.key
            self._all.add(conn)
            return conn
        raise failure or ConnectError(f"no address to connect to for {target.host}")

    async def _open(self, conn: Connection, host: str, port: int, family: int, tls: ssl.SSLContext | None,
                    server_hostname: str | None) -> None:
        """The one place a socket is opened (tests record it here)."""
        await self.loop.create_connection(lambda: conn, host, port, family=family, ssl=tls,
                                          server_hostname=server_hostname)

    def _release(self, conn: Connection, reusable: bool) -> None:
        if reusable and self.keepalive is not None and not self._closed:
            conn.idle_since = self.loop.time()
            conn.parser = None
            self._idle.setdefault(conn.key, []).append(conn)
            if self._sweeper is None:
                self._sweeper = self.loop.call_later(self.keepalive, self._sweep)
        else:
            conn.close()
        self._give_back()

    def _give_back(self) -> None:
        self._in_use -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def _slot(self, deadline: float, what: str) -> None:
        while self._in_use >= self.limit:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise ReadTimeout(what) from None
            if self._closed:
                raise ClientClosed("the upstream client was closed")

    def _lost(self, conn: Connection) -> None:
        self._all.discard(conn)
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def _sweep(self) -> None:
        """Close connections idle longer than the keep-alive time; come back while any are idle."""
        self._sweeper = None
        oldest = self.loop.time() - self.keepalive
        for idle in self._idle.values():
            for conn in [c for c in idle if c.idle_since <= oldest]:
                conn.close()
        if any(self._idle.values()):
            self._sweeper = self.loop.call_later(self.keepalive, self._sweep)

    def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self._all):
            conn.close()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
