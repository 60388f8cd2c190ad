"""An MCP server as an upstream, over Streamable HTTP: POST messages, GET the server's own stream, DELETE a
session. Reached through the guarded session (the egress policy at every connect), never following a
redirect. What comes back is read as JSON-RPC; anything else is garbage and fails the call (502), a server
that does not answer in time fails it too (504): never a hang.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import AsyncIterator

import aiohttp
import orjson

from cbgate.errors import CloudBaseError, ModelRequestFailed, ModelRequestTimeout
from cbgate.providers.netguard import EgressRefused

MAX_EVENT_BYTES = 4 * 1024 * 1024  # one SSE event (or JSON body) from a server, at most
CONNECT_TIMEOUT = 10.0
# headers of the client's that the server needs to see (MCP's own); everything else stays at the gateway
FORWARDED = ("accept", "content-type", "mcp-protocol-version", "last-event-id", "mcp-method", "mcp-name")
FORWARDED_PREFIX = "mcp-param-"


class McpUpstreamFailed(ModelRequestFailed):
    """The MCP server could not be reached or answered what is not MCP."""


class McpUpstreamTimeout(ModelRequestTimeout):
    """The MCP server did not answer within its service's timeout."""


class McpUpstreamRefused(CloudBaseError):
    """The server answered with an HTTP error of its own (an unknown session is its 404): passed on as it is."""

    def __init__(self, status: int, body: bytes, content_type: str):
        super().__init__(f"the MCP server answered {status}")
        self.status = status
        self.code = "INVALID_PARAM" if status < 500 else "AI_MODEL_REQUEST_FAILED"
        self.body = body
        self.content_type = content_type


@dataclass(frozen=True, slots=True)
class McpTarget:
    name: str  # the service, for messages
    url: str
    headers: dict[str, str]  # the service's own (decrypted, never logged)
    timeout: float


@dataclass(slots=True)
class Event:
    message: dict
    event_id: str | None = None


@dataclass(slots=True)
class McpReply:
    """The server's answer: its status and session, then either its JSON messages or its event stream."""
    status: int
    session_id: str | None
    messages: list[dict] = field(default_factory=list)
    events: AsyncIterator[Event] | None = None
    response: aiohttp.ClientResponse | None = None

    def close(self) -> None:
        if self.response is not None:
            self.response.release()
            self.response = None


def decode_message(data: bytes, service: str) -> dict:
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise McpUpstreamFailed(f"MCP service {service} answered with what is not JSON") from None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise McpUpstreamFailed(f"MCP service {service} answered with what is not a JSON-RPC message")
    return message


def _sse_block(block: bytes) -> tuple[bytes | None, bytes | None, bytes | None]:
    """(event name, event id, data or None) of one SSE block; comments and retry lines carry nothing we use."""
    name, event_id, data, seen = None, None, [], False
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
            seen = True
        elif line.startswith(b"id:"):
            event_id = line[3:].strip()
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    return name, event_id, b"\n".join(data) if seen else None


async def read_blocks(response: aiohttp.ClientResponse, service: str) -> AsyncIterator[tuple]:
    """(event name, event id, data) of each event with data in an SSE body, as it comes."""
    pending = b""
    try:
        while True:
            chunk = await response.content.readany()
            if not chunk:
                return
            pending += chunk.replace(b"\r\n", b"\n") if b"\r" in chunk else chunk
            if len(pending) > MAX_EVENT_BYTES:
                raise McpUpstreamFailed(f"MCP service {service} sent an event over {MAX_EVENT_BYTES} bytes")
            *blocks, pending = pending.split(b"\n\n")
            for block in blocks:
                name, event_id, data = _sse_block(block)
                if data is not None and data.strip():
                    yield name, event_id.decode("latin-1") if event_id else None, data
    except aiohttp.ClientError as exc:
        raise McpUpstreamFailed(f"MCP service {service} broke off its stream: {type(exc).__name__}") from None


async def read_events(response: aiohttp.ClientResponse, service: str) -> AsyncIterator[Event]:
    """The messages of a Streamable HTTP event stream, each with its event id. How long the caller waits is
    the caller's."""
    blocks = read_blocks(response, service)
    try:
        async for _, event_id, data in blocks:
            yield Event(decode_message(data, service), event_id)
    finally:
        await blocks.aclose()


class McpUpstream:
    """Calls to one MCP server over a pooled session whose connector applies the egress policy."""

    def __init__(self, session: aiohttp.ClientSession, target: McpTarget):
        self.session = session
        self.target = target

    def _headers(self, method: str, client_headers: dict[str, str], session_id: str | None) -> dict[str, str]:
        headers = {k: v for k, v in client_headers.items() if k in FORWARDED or k.startswith(FORWARDED_PREFIX)}
        # the gateway reads JSON and event streams alike, whatever its own client takes (a plain JSON-RPC
        # client sends no Accept at all, which a Streamable HTTP server refuses)
        if method == "POST":
            headers.update({"accept": "application/json, text/event-stream", "content-type": "application/json"})
        elif method == "GET":
            headers["accept"] = "text/event-stream"
        headers.update(self.target.headers)
        if session_id:
            headers["mcp-session-id"] = session_id
        return headers

    async def open_at(self, url: str, body: bytes) -> McpReply:
        """POST a message to another URL of the same server (an SSE transport's message endpoint)."""
        response = await self._send("POST", body, {}, None, url)
        try:
            if not 200 <= response.status < 300:
                raise McpUpstreamFailed(f"MCP service {self.target.name} refused a message: HTTP {response.status}")
            await self._read(response)
            return McpReply(response.status, None)
        finally:
            response.release()

    async def _send(self, method: str, body: bytes | None, client_headers: dict[str, str],
                    session_id: str | None, url: str | None = None) -> aiohttp.ClientResponse:
        name = self.target.name
        try:  # a server answering JSON sends its headers only when the call is done: the service's timeout
            async with asyncio.timeout(self.target.timeout):
                return await self.session.request(
                    method, url or self.target.url, data=body,
                    headers=self._headers(method, client_headers, session_id),
                    allow_redirects=False, timeout=aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT))
        except TimeoutError:
            raise McpUpstreamTimeout(f"MCP service {name} did not answer within {self.target.timeout:g}s") from None
        except EgressRefused as exc:
            raise McpUpstreamFailed(f"MCP service {name} may not be reached: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise McpUpstreamFailed(f"MCP service {name} is unreachable: {type(exc).__name__}") from None

    async def open(self, method: str, body: bytes | None, client_headers: dict[str, str],
                   session_id: str | None) -> McpReply:
        """Send one HTTP request to the server and read its answer up to its body: a JSON body whole, an
        event stream as it comes. An HTTP error of the server's own is McpUpstreamRefused."""
        response = await self._send(method, body, client_headers, session_id)
        try:
            return await self._reply(response)
        except BaseException:
            response.release()
            raise

    async def _reply(self, response: aiohttp.ClientResponse) -> McpReply:
        name = self.target.name
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        session_id = response.headers.get("mcp-session-id")
        if response.status >= 300:
            body = await self._read(response)
            if 300 <= response.status < 400 or response.status >= 500:
                raise McpUpstreamFailed(f"MCP service {name} answered HTTP {response.status}")
            raise McpUpstreamRefused(response.status, body, content_type or "application/json")
        if content_type == "text/event-stream":
            return McpReply(response.status, session_id, events=read_events(response, name), response=response)
        body = await self._read(response)
        response.release()
        if not body.strip():
            return McpReply(response.status, session_id)
        if content_type != "application/json":
            raise McpUpstreamFailed(f"MCP service {name} answered {content_type or 'no content type'}, not JSON")
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise McpUpstreamFailed(f"MCP service {name} answered with what is not JSON") from None
        items = decoded if isinstance(decoded, list) else [decoded]
        return McpReply(response.status, session_id,
                        messages=[decode_message(orjson.dumps(m), name) for m in items])

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            async with asyncio.timeout(self.target.timeout):
                body = await response.content.read(MAX_EVENT_BYTES + 1)
        except TimeoutError:
            raise McpUpstreamTimeout(f"MCP service {self.target.name} did not finish its answer within "
                                     f"{self.target.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise McpUpstreamFailed(f"MCP service {self.target.name} broke off: {type(exc).__name__}") from None
        if len(body) > MAX_EVENT_BYTES:
            raise McpUpstreamFailed(f"MCP service {self.target.name} answered over {MAX_EVENT_BYTES} bytes")
        return body
