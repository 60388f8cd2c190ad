"""A TCP server on 127.0.0.1 that answers each HTTP request with raw bytes it was given (garbage, cut
answers, odd framings), in a thread of its own. It counts connections and keeps the requests' heads, so
tests can see keep-alive reuse and what the client sent."""
from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass


@dataclass
class RawReply:
    data: bytes  # written as it is
    close: bool = False  # close the connection after writing
    reset: bool = False  # abort it (RST) after writing


OK_JSON = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}'


def http_reply(body: bytes = OK_JSON, status: str = "200 OK", headers: str = "Content-Type: application/json\r\n",
               **kwargs) -> RawReply:
    return RawReply(f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body, **kwargs)


class RawUpstream:
    def __init__(self, tls=None):
        self.tls = tls  # an ssl.SSLContext to serve HTTPS with
        self.replies: deque[RawReply] = deque()
        self.default = http_reply()
        self.connections = 0
        self.heads: list[bytes] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1"

    def script(self, *replies: RawReply) -> None:
        self.replies.extend(replies)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                reply = self.replies.popleft() if self.replies else self.default
                writer.write(reply.data)
                await writer.drain()
                if reply.reset:
                    writer.transport.abort()
                    return
                if reply.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def start(self) -> RawUpstream:
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0,
                                                                                     ssl=self.tls))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
