"""MCP servers that misbehave, on loopback: one that answers garbage, one that stalls without a byte, one that
hangs up mid-answer. Each counts the requests it got, so tests wait on state."""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from tests.support.gateway import free_port

GARBAGE = {
    "json": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\nnot json!",
    "sse": (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
            b"event: message\r\ndata: {\"oops\": \r\n\r\n"),
    "html": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n\r\n<html>",
    "hangup": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n",  # then the connection closes
}


@dataclass
class BadMcpServer:
    url: str
    requests: int = 0
    stop: callable = field(default=None, repr=False)


def start_bad_mcp_server(mode: str) -> BadMcpServer:
    """`mode`: a key of GARBAGE, or "stall" (reads the request, never answers)."""
    port = free_port()
    state = BadMcpServer(f"http://127.0.0.1:{port}/mcp")
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    held: list = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
        except (asyncio.IncompleteReadError, ValueError):
            writer.close()
            return
        state.requests += 1
        if mode == "stall":
            held.append(writer)  # kept open, never answered
            return
        writer.write(GARBAGE[mode])
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", port)
        ready.set()
        async with server:
            try:
                await server.serve_forever()
            except asyncio.CancelledError:
                pass  # stopped

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        for task in asyncio.all_tasks(loop):
            loop.call_soon_threadsafe(task.cancel)
        thread.join(timeout=10)

    state.stop = stop
    return state
