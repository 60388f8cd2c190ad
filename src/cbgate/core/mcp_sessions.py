"""MCP sessions through the gateway: the `Mcp-Session-Id` a client holds is the gateway's own, bound to the
key and service that opened it, and stands for the server's session id, which the client never sees. A
session id presented with another key or for another service is unknown (404, as MCP says for a session
that is gone), so one key can never ride another's session.

Sessions live in this process (a deployment with several replicas routes a session's requests to one
replica: the README says how). Idle ones are forgotten after IDLE_SECONDS; at most MAX_SESSIONS are kept.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field

IDLE_SECONDS = 3600.0
MAX_SESSIONS = 10_000


@dataclass(slots=True)
class McpSession:
    token: str  # what the client sends as Mcp-Session-Id
    env_id: str
    key_id: str
    service: str
    upstream_id: str | None  # the server's session id; None until it names one
    used_at: float = field(default_factory=time.monotonic)
    # an SSE-transport client's stream: messages for it wait here; None for Streamable HTTP
    outbox: asyncio.Queue | None = None
    tasks: set = field(default_factory=set)  # the SSE client's POSTs still being served
    initialize: dict | None = None  # a plain client's initialize, replayed when the server forgot the session
    channel: object | None = None  # an SSE-transport server's stream for this session (McpSseChannel)

    def end(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.channel is not None:
            self.channel.close()
            self.channel = None


class McpSessions:
    def __init__(self, idle_seconds: float = IDLE_SECONDS, max_sessions: int = MAX_SESSIONS):
        self.idle_seconds = idle_seconds
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, McpSession] = OrderedDict()
        # plain JSON-RPC clients (no Mcp-Session-Id, no event streams) share one server session per key and
        # service, which the gateway holds for them
        self._implicit: OrderedDict[tuple[str, str, str], McpSession] = OrderedDict()

    def open(self, env_id: str, key_id: str, service: str, upstream_id: str | None,
             outbox: asyncio.Queue | None = None) -> McpSession:
        self._expire()
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)  # the least recently used goes first
        session = McpSession("mcps_" + os.urandom(24).hex(), env_id, key_id, service, upstream_id, outbox=outbox)
        self._sessions[session.token] = session
        return session

    def implicit(self, env_id: str, key_id: str, service: str) -> McpSession:
        """The server session the gateway holds for a key's plain JSON-RPC POSTs to a service."""
        key = (env_id, key_id, service)
        session = self._implicit.get(key)
        if session is None:
            while len(self._implicit) >= self.max_sessions:
                self._implicit.popitem(last=False)[1].end()
            session = self._implicit[key] = McpSession("", env_id, key_id, service, None)
        self._implicit.move_to_end(key)
        session.used_at = time.monotonic()
        return session

    def find(self, token: str, env_id: str, key_id: str, service: str) -> McpSession | None:
        """The session `token` names, only for the key and service that opened it."""
        session = self._sessions.get(token)
        if session is None or (session.env_id, session.key_id, session.service) != (env_id, key_id, service):
            return None
        if time.monotonic() - session.used_at > self.idle_seconds:
            self.close(token)
            return None
        session.used_at = time.monotonic()
        self._sessions.move_to_end(token)
        return session

    def close(self, token: str) -> McpSession | None:
        session = self._sessions.pop(token, None)
        if session is not None:
            session.end()
        return session

    def _expire(self) -> None:
        now = time.monotonic()
        while self._sessions:
            token, oldest = next(iter(self._sessions.items()))
            if now - oldest.used_at <= self.idle_seconds:
                return
            self.close(token)

    def __len__(self) -> int:
        return len(self._sessions)
