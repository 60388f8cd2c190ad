"""An MCP server over the older HTTP+SSE transport (a service created with `--transport sse`): one event stream
per client session, whose first event names where to POST; answers and notifications come back on that
stream and are routed here to the POST that asked (by request id, progress by progress token), the rest to
the session's own stream. Same egress policy, same failures as Streamable HTTP (providers/mcp_upstream.py).
"""
from __future__ import annotations

import asyncio
from urllib.parse import urljoin, urlsplit

import aiohttp
import orjson

from cbgate.providers.mcp_upstream import (CONNECT_TIMEOUT, Event, McpReply, McpTarget, McpUpstream,
                                           McpUpstreamFailed, McpUpstreamTimeout, decode_message, read_blocks)

NOTICES = 256  # notifications kept for a session's own stream before the oldest are dropped
CLOSED = object()


def _key(request_id) -> str:
    return orjson.dumps(request_id).decode()


class McpSseChannel:
    def __init__(self, http: McpUpstream):
        self.http = http  # the service's target and the guarded session
        self.endpoint: str | None = None
        self.response: aiohttp.ClientResponse | None = None
        self.reader: asyncio.Task | None = None
        self.waiting: dict[str, asyncio.Queue] = {}  # request id -> the queue of the POST that sent it
        self.progress: dict[str, asyncio.Queue] = {}  # progress token -> the same
        self.notices: asyncio.Queue = asyncio.Queue(NOTICES)
        self.broken: Exception | None = None

    @property
    def target(self) -> McpTarget:
        return self.http.target

    async def connect(self, headers: dict[str, str]) -> None:
        reply = await self.http.open("GET", None, headers, None)
        if reply.response is None:
            raise McpUpstreamFailed(f"MCP service {self.target.name} did not open an event stream")
        self.response = reply.response
        blocks = read_blocks(reply.response, self.target.name)
        try:
            async with asyncio.timeout(min(self.target.timeout, CONNECT_TIMEOUT)):
                name, _, data = await anext(blocks)
        except (TimeoutError, StopAsyncIteration):
            self.close()
            raise McpUpstreamTimeout(f"MCP service {self.target.name} did not name its message endpoint") from None
        endpoint = urljoin(self.target.url, data.decode("utf-8", "replace").strip())
        if name != b"endpoint" or urlsplit(endpoint)[:2] != urlsplit(self.target.url)[:2]:
            self.close()
            raise McpUpstreamFailed(f"MCP service {self.target.name} named no endpoint of its own origin")
        self.endpoint = endpoint
        self.reader = asyncio.create_task(self._read(blocks))

    async def _read(self, blocks) -> None:
        try:
            async for _, event_id, data in blocks:
                self._route(Event(decode_message(data, self.target.name), event_id))
            self.broken = McpUpstreamFailed(f"MCP service {self.target.name} closed its event stream")
        except McpUpstreamFailed as exc:
            self.broken = exc
        finally:
            for queue in {id(q): q for q in [*self.waiting.values(), *self.progress.values()]}.values():
                queue.put_nowait(CLOSED)

    def _route(self, event: Event) -> None:
        message = event.message
        if "method" not in message:
            queue = self.waiting.pop(_key(message.get("id")), None)
        else:
            params = message.get("params")
            token = params.get("progressToken") if isinstance(params, dict) else None
            queue = self.progress.get(_key(token)) if token is not None else None
        if queue is not None:
            queue.put_nowait(event)
        elif "method" in message:
            if self.notices.full():
                self.notices.get_nowait()
            self.notices.put_nowait(event)

    async def post(self, messages: list[dict], body: bytes) -> McpReply:
        """Send on; the reply's events are what comes back for these requests, until each is answered."""
        if self.broken is not None or self.endpoint is None:
            raise self.broken or McpUpstreamFailed(f"MCP service {self.target.name} is not connected")
        queue: asyncio.Queue = asyncio.Queue()
        asked = [_key(m["id"]) for m in messages if "method" in m and "id" in m]
        tokens = [_key(t) for m in messages if (t := ((m.get("params") or {}).get("_meta") or {}).get("progressToken"))
                  is not None] if all(isinstance(m.get("params", {}), dict) for m in messages) else []
        for key in asked:
            self.waiting[key] = queue
        for token in tokens:
            self.progress[token] = queue
        try:
            reply = await self.http.open_at(self.endpoint, body)
        except BaseException:
            self._forget(asked, tokens)
            raise
        reply.close()
        if not asked:
            return McpReply(202, None)
        return McpReply(200, None, events=self._answers(queue, asked, tokens))

    async def _answers(self, queue: asyncio.Queue, asked: list[str], tokens: list[str]):
        pending = set(asked)
        try:
            while pending:
                item = await queue.get()
                if item is CLOSED:
                    raise self.broken or McpUpstreamFailed(f"MCP service {self.target.name} closed its stream")
                if "method" not in item.message:
                    pending.discard(_key(item.message.get("id")))
                yield item
        finally:
            self._forget(asked, tokens)

    def _forget(self, asked: list[str], tokens: list[str]) -> None:
        for key in asked:
            self.waiting.pop(key, None)
        for token in tokens:
            self.progress.pop(token, None)

    async def listen(self):
        """The session's own stream: notifications and requests no POST is waiting for."""
        while self.broken is None:
            yield await self.notices.get()

    def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.response is not None:
            self.response.release()
            self.response = None
