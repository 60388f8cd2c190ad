"""An upstream that answers each request with the next raw answer it was given (status, content type,
bytes), for feeding the gateway malformed answers. Served by aiohttp on 127.0.0.1 in a thread.

`{SECRET}` in an answer's bytes is replaced by the key the request carried (Bearer or x-api-key): an
upstream that echoes its key, for the secret canary tests."""
from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass

from aiohttp import web


@dataclass
class RawAnswer:
    body: bytes
    content_type: str = "application/json"
    status: int = 200


class ScriptedUpstream:
    def __init__(self):
        self.answers: deque[RawAnswer] = deque()
        self.default = RawAnswer(b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, '
                                 b'"finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}')
        self.served = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def answer(self, *answers: RawAnswer) -> None:
        self.answers.extend(answers)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.served += 1
        if request.method == "GET":
            return web.json_response({"object": "list", "data": []})
        answer = self.answers.popleft() if self.answers else self.default
        key = request.headers.get("x-api-key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        return web.Response(status=answer.status, body=answer.body.replace(b"{SECRET}", key.encode()),
                            headers={"Content-Type": answer.content_type})

    def start(self) -> ScriptedUpstream:
        ready = threading.Event()

        async def serve():
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()

        def run():
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        async def down():
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(down(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
