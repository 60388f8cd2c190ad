"""A real MCP server (PyPI `mcp`'s MCPServer, formerly FastMCP) on loopback, in a thread, for the gateway to
front: tools (one reports progress, one stalls until released), a resource, and an event store so that
streams can be resumed with Last-Event-ID. Counters let tests wait on what the server saw."""
from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventStore
from mcp.server.transport_security import TransportSecuritySettings

from tests.support.gateway import free_port

OPEN_HOSTS = TransportSecuritySettings(enable_dns_rebinding_protection=False)


class MemoryEventStore(EventStore):
    """Every event kept, in order, so any of them can be resumed after."""

    def __init__(self):
        self.events: list[tuple[str, str, object]] = []  # (event id, stream id, message)
        self.ids = itertools.count(1)

    async def store_event(self, stream_id, message):
        event_id = str(next(self.ids))
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id, send_callback):
        from mcp.server.streamable_http import EventMessage
        found = next((i for i, e in enumerate(self.events) if e[0] == last_event_id), None)
        if found is None:
            return None
        stream_id = self.events[found][1]
        for event_id, stream, message in self.events[found + 1:]:
            if stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


@dataclass
class McpTestServer:
    url: str  # Streamable HTTP endpoint
    sse_url: str  # SSE endpoint
    seen: dict = field(default_factory=dict)  # tool name -> calls that reached the server
    headers: list = field(default_factory=list)  # the Authorization header of each request it got
    release: threading.Event = field(default_factory=threading.Event)  # lets `stall` return
    stop: callable = None
    events: MemoryEventStore | None = None


def build_server(state: McpTestServer) -> MCPServer:
    server = MCPServer("cbgate-test")

    def saw(name: str) -> None:
        state.seen[name] = state.seen.get(name, 0) + 1

    @server.tool()
    async def add(a: int, b: int, ctx: Context) -> int:
        """Add two numbers, reporting progress half way."""
        saw("add")
        await ctx.report_progress(1, 2, "half way")
        return a + b

    @server.tool()
    def secret() -> str:
        """What only some keys may read."""
        saw("secret")
        return "classified"

    @server.tool()
    def fail() -> str:
        """A tool that fails (an isError result)."""
        saw("fail")
        raise ValueError("this tool always fails")

    @server.tool()
    async def stall() -> str:
        """Does not answer until the test releases it."""
        saw("stall")
        while not state.release.is_set():
            await asyncio.sleep(0.02)
        return "released"

    @server.resource("demo://greeting")
    def greeting() -> str:
        return "hello through the gateway"

    return server


def start_mcp_server() -> McpTestServer:
    port = free_port()
    state = McpTestServer(f"http://127.0.0.1:{port}/mcp", f"http://127.0.0.1:{port}/sse")
    state.events = MemoryEventStore()
    server = build_server(state)
    streamable = server.streamable_http_app(event_store=state.events, transport_security=OPEN_HOSTS)
    sse = server.sse_app(transport_security=OPEN_HOSTS)

    async def app(scope, receive, send):
        if scope["type"] == "http":
            state.headers.append(dict(scope["headers"]).get(b"authorization"))
            target = sse if scope["path"].startswith(("/sse", "/messages")) else streamable
            return await target(scope, receive, send)
        return await streamable(scope, receive, send)  # lifespan: the session manager runs there

    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the MCP test server did not start")
        time.sleep(0.02)

    def stop():
        state.release.set()
        uv.should_exit = True
        thread.join(timeout=10)

    state.stop = stop
    return state



