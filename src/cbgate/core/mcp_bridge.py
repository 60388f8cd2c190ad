"""MCP's HTTP+SSE transport for clients (the SDKs' SSEClientTransport): a GET opens an event stream whose first
event names the URL to POST messages to; every answer and notification then travels on that stream. Each
POST is served by the same dispatch as Streamable HTTP (core.mcp_gateway), as a task of the stream's
session: when the stream's client leaves, its calls are cancelled (their slots released, their records
kept) and the server's session is ended."""
from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from cbgate.core.mcp_calls import McpCaller
from cbgate.core.mcp_gateway import McpAnswer, McpGateway, McpSessionNotFound
from cbgate.core.mcp_sessions import McpSession
from cbgate.errors import CloudBaseError
from cbgate.protocol.mcp_jsonrpc import Message, rpc_error
from cbgate.providers.mcp_upstream import Event

log = logging.getLogger("cbgate.mcp")

OUTBOX_SIZE = 256  # messages waiting for a slow SSE client before its calls wait for it
STREAM_ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


class McpBridge:
    def __init__(self, gateway: McpGateway):
        self.gateway = gateway

    def open(self, caller: McpCaller) -> McpSession:
        p = caller.principal
        return self.gateway.sessions.open(p.env_id, p.key_id, caller.service, None,
                                          outbox=asyncio.Queue(OUTBOX_SIZE))

    async def events(self, caller: McpCaller, session: McpSession, headers: dict[str, str],
                     first: bytes) -> AsyncIterator[Event | bytes]:
        """What the SSE client receives, `first` (its endpoint event) first, until it leaves."""
        try:
            yield first
            while True:
                yield await session.outbox.get()
        finally:
            self.gateway.sessions.close(session.token)  # cancels the calls still running
            if session.upstream_id is not None:
                task = asyncio.create_task(self._end(caller, headers, session))
                task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _end(self, caller: McpCaller, headers: dict[str, str], session: McpSession) -> None:
        try:
            reply = await self.gateway._client(caller).open("DELETE", None, headers, session.upstream_id)
            reply.close()
        except Exception as exc:  # the server may be gone too; its session then ends with it
            log.info("could not end the MCP session of a departed SSE client: %s", exc)

    def post(self, caller: McpCaller, token: str, messages: list[Message], batch: bool) -> None:
        """Accept one POST of an SSE client: served in the background, answered on its stream."""
        p = caller.principal
        session = self.gateway.sessions.find(token, p.env_id, p.key_id, caller.service)
        if session is None or session.outbox is None:
            raise McpSessionNotFound("this SSE session does not exist (or its stream closed): connect again")
        task = asyncio.create_task(self._serve(caller, session, messages, batch))
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)

    async def _serve(self, caller: McpCaller, session: McpSession, messages: list[Message], batch: bool) -> None:
        outbox = session.outbox
        try:
            answer = await self.gateway.post(caller, messages, batch, STREAM_ACCEPT, session.token, True)
            if isinstance(answer, McpAnswer):
                body = answer.body if isinstance(answer.body, list) else [answer.body] if answer.body else []
                for message in body:
                    await outbox.put(Event(message))
                return
            try:
                async for event in answer.events:
                    await outbox.put(event)
            finally:
                await answer.aclose()
        except CloudBaseError as err:
            for message in messages:
                if message.is_request:
                    await outbox.put(Event(rpc_error(message.id, err, caller.request_id)))
