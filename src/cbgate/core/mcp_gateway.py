"""MCP through the gateway: `/v1/cloudrun/{service}/messages` dispatched to the environment's MCP server.

Every message is forwarded as the client sent it, except where the gateway decides:
- a tools/call is permitted or refused (core.permissions, the one decision), admitted and metered
  (core.mcp_calls) before it goes out, and answered with a JSON-RPC error when refused;
- a tools/list result shows only the tools the key may call (so does any result carrying a tools list, on
  any stream, resumed or not);
- the session id the client holds is the gateway's (core.mcp_sessions);
- a server that fails, stalls past its timeout or answers garbage yields a JSON-RPC error per open request.
Hands back values (an `McpAnswer`, or an `McpStream` of messages), never HTTP responses.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import AsyncIterator

import orjson

from cbgate.core.auth import Principal, authenticate
from cbgate.core.mcp_admin import DEFAULT_TIMEOUT, McpServiceNotFound, open_headers
from cbgate.core.mcp_calls import DISCONNECTED, ERROR, FAILED, TIMEOUT, McpCaller, ToolCall, outcome_of
from cbgate.core.mcp_sessions import McpSession, McpSessions
from cbgate.core.metering import Metering
from cbgate.core.permissions import may_call_tool, may_use_service
from cbgate.core.tenants import TenantDirectory
from cbgate.errors import CloudBaseError, InvalidPath, ModelRequestFailed, PermissionDenied
from cbgate.limits.base import Limiter
from cbgate.protocol.mcp_jsonrpc import Message, filtered_tools, rpc_error
from cbgate.providers.mcp_upstream import (Event, McpReply, McpTarget, McpUpstream, McpUpstreamFailed,
                                           McpUpstreamRefused, McpUpstreamTimeout)
from cbgate.providers.mcp_sse_upstream import McpSseChannel
from cbgate.providers.upstream_http import UpstreamClient


class McpSessionNotFound(InvalidPath):
    """The client's Mcp-Session-Id is not one this key opened for this service (or it expired): 404, upon
    which MCP clients start a new session."""


@dataclass(slots=True)
class McpAnswer:
    """A whole answer: `body` (a message, a list of them, or None for 202) and the session to name."""
    status: int
    body: dict | list | None = None
    session: str | None = None


@dataclass(slots=True)
class StreamMark:
    """Where the shutdown deadline (core.shutdown) marks a stream it cuts: an MCP stream has no chat Meter."""
    cut: CloudBaseError | None = None


@dataclass(slots=True)
class McpStream:
    """An answer as a stream of messages (with their event ids): what the edge's one stream pump drains."""
    events: AsyncIterator[Event]
    session: str | None = None
    meter: StreamMark = field(default_factory=StreamMark)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events

    async def aclose(self) -> None:
        await self.events.aclose()


@dataclass(slots=True)
class Forwarded:
    """What one POST sent on: its meters by request id and the method of every request."""
    caller: McpCaller
    calls: dict = field(default_factory=dict)  # JSON-RPC id -> ToolCall
    pending: dict = field(default_factory=dict)  # JSON-RPC id -> method, until answered

    def settle(self, message: dict) -> dict:
        """Note the server's answer to one of these requests; returns it as the client may see it."""
        key = _id_key(message.get("id"))
        if "method" in message or key not in self.pending:
            return filter_for(self.caller, message)
        self.pending.pop(key)
        call = self.calls.pop(key, None)
        if call is not None:
            call.finish(outcome_of(message))
        return filter_for(self.caller, message)

    def fail_open(self, err: CloudBaseError, outcome: str) -> list[dict]:
        """JSON-RPC errors for every request still unanswered, their calls recorded with `outcome`."""
        errors = [rpc_error(self.pending_ids[key], err, self.caller.request_id) for key in list(self.pending)]
        for call in self.calls.values():
            call.finish(outcome, err if outcome != DISCONNECTED else None)
        self.calls.clear()
        self.pending.clear()
        return errors

    @property
    def pending_ids(self) -> dict:
        return {key: orjson.loads(key) for key in self.pending}


def _id_key(request_id) -> str:
    return orjson.dumps(request_id).decode()  # 1 and "1" are different ids


def filter_for(caller: McpCaller, message: dict) -> dict:
    result = message.get("result")
    if isinstance(result, dict) and isinstance(result.get("tools"), list):
        p = caller.principal
        allowed = lambda tool: may_call_tool(caller.permissions, p.kind, caller.service, tool)  # noqa: E731
        return {**message, "result": filtered_tools(result, allowed)}
    return message


class McpGateway:
    def __init__(self, directory: TenantDirectory, upstream: UpstreamClient, metering: Metering,
                 limiter: Limiter | None, settings, sessions: McpSessions | None = None):
        self.directory = directory
        self.upstream = upstream
        self.metering = metering
        self.limiter = limiter
        self.settings = settings
        self.sessions = sessions or McpSessions()
        self._seq = 0

    def caller(self, authorization: str | None, host: str | None, service: str, request_id: str) -> McpCaller:
        """Who may reach `service`: authenticated, the service in the key's own environment (another's is
        absent: 404), usable by this key (403), and switched on."""
        principal: Principal = authenticate(self.directory.current(), authorization, host)
        self.directory.note_key_used(principal.key_id)
        return self.service_caller(principal, service, request_id)

    def service_caller(self, principal: Principal, service: str, request_id: str,
                       agent_id: str | None = None) -> McpCaller:
        """An authenticated key's way to `service` (an MCP client's, or an agent's run for the key that runs
        it): the service in the key's own environment (404 otherwise), usable by this key (403), switched on.
        Which of its tools may be called is decided per call, in core.permissions."""
        snapshot = self.directory.current()  # a store out of reach for too long: refused, never guessed
        row = snapshot.mcp_services.get((principal.env_id, service))
        if row is None:
            raise McpServiceNotFound(f"MCP service {service!r} does not exist in {principal.env_id}")
        permissions = snapshot.permissions_of(principal.key_id)
        if not may_use_service(permissions, principal.kind, service):
            raise PermissionDenied(f"this API key may not use MCP service {service}")
        if not row.enabled:
            raise PermissionDenied(f"MCP service {service} is switched off")
        return McpCaller(principal, service, permissions, request_id, agent_id)

    def _row(self, caller: McpCaller):
        row = self.directory.snapshot.mcp_services.get((caller.principal.env_id, caller.service))
        if row is None:
            raise McpServiceNotFound(f"MCP service {caller.service!r} no longer exists")
        return row

    def _client(self, caller: McpCaller) -> McpUpstream:
        row = self._row(caller)
        target = McpTarget(row.name, row.url, open_headers(self.settings, row), row.timeout or DEFAULT_TIMEOUT)
        return McpUpstream(self.upstream.session(guarded=True), target)

    async def _channel(self, caller: McpCaller, session: McpSession, headers: dict[str, str]) -> McpSseChannel:
        """The session's stream to a server on the SSE transport, opened on first use."""
        if session.channel is None or session.channel.broken is not None:
            if session.channel is not None:
                session.channel.close()
            channel = McpSseChannel(self._client(caller))
            await channel.connect(headers)
            session.channel = channel
        return session.channel

    def session(self, caller: McpCaller, token: str | None) -> McpSession | None:
        if not token:
            return None
        p = caller.principal
        found = self.sessions.find(token, p.env_id, p.key_id, caller.service)
        if found is None:
            raise McpSessionNotFound("this MCP session does not exist (or expired): initialize a new one")
        return found

    async def _admit(self, caller: McpCaller, messages: list[Message]) -> tuple[Forwarded, list[Message], list]:
        """Split the messages into those forwarded and the answers the gateway gives itself (refusals)."""
        sent = Forwarded(caller)
        forward, answers = [], []
        for message in messages:
            if message.tool is not None and message.is_request:
                self._seq += 1
                call = ToolCall(self.metering, caller, message.tool, self._seq)
                try:
                    await call.admit(self.limiter, self.directory.snapshot)
                except CloudBaseError as err:
                    answers.append(rpc_error(message.id, err, caller.request_id))
                    continue
                sent.calls[_id_key(message.id)] = call
            if message.is_request:
                sent.pending[_id_key(message.id)] = message.method
            forward.append(message)
        return sent, forward, answers

    async def post(self, caller: McpCaller, messages: list[Message], batch: bool, headers: dict[str, str],
                   token: str | None, stream_ok: bool) -> McpAnswer | McpStream:
        """One client POST. `stream_ok`: the client accepts an event stream (else everything comes as JSON)."""
        session = self.session(caller, token)
        plain = session is None and not stream_ok
        if plain:
            p = caller.principal
            session = self.sessions.implicit(p.env_id, p.key_id, caller.service)
            if any(m.method == "initialize" for m in messages):  # the plain client starts over
                session.end()
                session.upstream_id, session.initialize = None, next(m.raw for m in messages
                                                                     if m.method == "initialize")
        if session is None and self._row(caller).transport == "sse":  # the server's stream needs a session
            p = caller.principal
            session = self.sessions.open(p.env_id, p.key_id, caller.service, None)
            token = session.token
        sent, forward, answers = await self._admit(caller, messages)
        if not forward:
            return McpAnswer(200, answers if batch else answers[0], token)
        body = orjson.dumps([m.raw for m in forward] if batch else forward[0].raw)
        try:
            reply = await self._send(caller, session, body, headers, plain)
        except BaseException as exc:
            return self._failed(sent, exc, answers, batch, token)
        token = None if plain else self._session_token(caller, session, reply, token)
        if plain and reply.session_id and session.upstream_id is None:
            session.upstream_id = reply.session_id
        if reply.events is None:
            found = answers + [sent.settle(m) for m in reply.messages]
            found += sent.fail_open(McpUpstreamFailed("the MCP server did not answer this request"), FAILED)
            if not found:
                return McpAnswer(202 if reply.status == 202 else reply.status, None, token)
            return McpAnswer(200, found if batch or len(found) > 1 else found[0], token)
        events = self._relay(sent, reply, answers, self._deadline(caller))
        if stream_ok:
            return McpStream(events, token)
        return await self._collect(events, batch, token)

    async def _send(self, caller: McpCaller, session: McpSession | None, body: bytes, headers: dict[str, str],
                    plain: bool) -> McpReply:
        """POST to the server; a session the server forgot is re-initialized once for a plain client, which
        cannot do it itself (it never sees a session)."""
        if self._row(caller).transport == "sse":
            channel = await self._channel(caller, session, headers)
            return await channel.post(orjson.loads(body) if body.startswith(b"[") else [orjson.loads(body)], body)
        client = self._client(caller)
        try:
            return await client.open("POST", body, headers, session.upstream_id if session else None)
        except McpUpstreamRefused as refused:
            if not (plain and refused.status == 404 and session.initialize is not None):
                raise
        session.upstream_id = None
        init = await client.open("POST", orjson.dumps(session.initialize), headers, None)
        session.upstream_id = init.session_id
        if init.events is not None:
            async for _ in init.events:
                break  # the initialize result: nothing else is waited for
            await init.events.aclose()
        init.close()
        done = await client.open("POST", b'{"jsonrpc":"2.0","method":"notifications/initialized"}', headers,
                                 session.upstream_id)
        done.close()
        return await client.open("POST", body, headers, session.upstream_id)

    def _failed(self, sent: Forwarded, exc: BaseException, answers: list, batch: bool, token: str | None):
        """The server could not be asked: each open request gets its JSON-RPC error (never a hang)."""
        if isinstance(exc, (asyncio.CancelledError, ConnectionError)):
            sent.fail_open(McpUpstreamFailed("the client left"), DISCONNECTED)
            raise exc
        if isinstance(exc, McpUpstreamRefused):  # the server's own HTTP answer (an unknown session): passed on
            sent.fail_open(exc, ERROR)
            raise exc
        if not isinstance(exc, ModelRequestFailed):
            sent.fail_open(McpUpstreamFailed("the gateway failed to forward this request"), FAILED)
            raise exc
        errors = answers + sent.fail_open(exc, TIMEOUT if isinstance(exc, McpUpstreamTimeout) else FAILED)
        if not errors:
            raise exc  # only notifications or responses were sent: the HTTP status says it
        return McpAnswer(200, errors if batch or len(errors) > 1 else errors[0], token)

    def _session_token(self, caller: McpCaller, session: McpSession | None, reply: McpReply,
                       token: str | None) -> str | None:
        if session is not None:
            if reply.session_id and session.upstream_id is None:
                session.upstream_id = reply.session_id
            return token
        if not reply.session_id:
            return None
        p = caller.principal
        return self.sessions.open(p.env_id, p.key_id, caller.service, reply.session_id).token

    def _deadline(self, caller: McpCaller) -> float:
        row = self.directory.snapshot.mcp_services.get((caller.principal.env_id, caller.service))
        timeout = (row.timeout if row else None) or DEFAULT_TIMEOUT
        return asyncio.get_running_loop().time() + timeout

    async def _relay(self, sent: Forwarded, reply: McpReply, answers: list, deadline: float) -> AsyncIterator[Event]:
        """The server's stream as the client may see it; while a request is unanswered it must answer by
        `deadline`, and a stream that fails or ends first yields one JSON-RPC error per open request."""
        events = reply.events
        outcome = FAILED
        try:
            for answer in answers:
                yield Event(answer)
            while True:
                try:
                    if sent.pending:
                        async with asyncio.timeout_at(deadline):
                            event = await anext(events)
                    else:
                        event = await anext(events)
                except StopAsyncIteration:
                    break
                yield Event(sent.settle(event.message), event.event_id)
            for error in sent.fail_open(McpUpstreamFailed("the MCP server ended its stream without answering"),
                                        FAILED):
                yield Event(error)
        except TimeoutError:
            err = McpUpstreamTimeout("the MCP server did not answer in time")
            for error in sent.fail_open(err, TIMEOUT):
                yield Event(error)
        except McpUpstreamFailed as err:
            for error in sent.fail_open(err, FAILED):
                yield Event(error)
        except (GeneratorExit, asyncio.CancelledError):
            outcome = DISCONNECTED
            raise
        finally:
            if sent.pending or sent.calls:
                sent.fail_open(McpUpstreamFailed("the stream ended"), outcome)
            reply.close()
            await events.aclose()

    async def _collect(self, events: AsyncIterator[Event], batch: bool, token: str | None) -> McpAnswer:
        """A plain JSON-RPC client (no event stream): the answers, whole; notifications are dropped."""
        found = []
        try:
            async for event in events:
                if "method" not in event.message:
                    found.append(event.message)
        finally:
            await events.aclose()
        if not found:
            return McpAnswer(202, None, token)
        return McpAnswer(200, found if batch or len(found) > 1 else found[0], token)

    async def listen(self, caller: McpCaller, headers: dict[str, str], token: str | None) -> McpStream | McpAnswer:
        """The server's own stream (GET): notifications and requests, or a resumed stream (Last-Event-ID)."""
        session = self.session(caller, token)
        if self._row(caller).transport == "sse":
            if session is None:
                return McpAnswer(405, None, token)  # no session, no stream of its own
            channel = await self._channel(caller, session, headers)
            return McpStream(self._pass_events(caller, channel.listen()), token)
        reply = await self._client(caller).open("GET", None, headers, session.upstream_id if session else None)
        if reply.events is None:
            reply.close()
            return McpAnswer(reply.status if reply.status != 200 else 405, None, token)
        return McpStream(self._pass_events(caller, reply.events, reply), token)

    async def _pass_events(self, caller: McpCaller, events: AsyncIterator[Event],
                           reply: McpReply | None = None) -> AsyncIterator[Event]:
        try:
            async for event in events:
                yield Event(filter_for(caller, event.message), event.event_id)
        finally:
            if reply is not None:
                reply.close()
            await events.aclose()

    async def end_session(self, caller: McpCaller, headers: dict[str, str], token: str | None) -> McpAnswer:
        """DELETE: the server's session ends, and the gateway's with it."""
        session = self.session(caller, token)
        if token:
            self.sessions.close(token)  # its SSE-transport stream, if any, ends with it
        if session is None or session.upstream_id is None:
            return McpAnswer(200)
        reply = await self._client(caller).open("DELETE", None, headers, session.upstream_id)
        reply.close()
        return McpAnswer(200)
