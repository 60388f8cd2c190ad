"""A scriptable fake upstream: OpenAI-compatible (`/v1/chat/completions`, `/v1/models`) and
Anthropic-protocol (`/v1/messages`), served by aiohttp in a thread (`start_fake_upstream()`) or as a
process (`python -m tests.support.fake_upstream --port N [--delay-ms X] [--events N]`).

It records every request (headers and body) and counts what it served on `GET /_stats`, so tests can
check what reached the upstream and compare the gateway's ledger with what was really produced.
Each request takes the next scripted `Reply` (`fake.script(Reply(status=429), ...)`, or
`POST /_script` with a JSON list of Reply fields), else the default reply.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support import fake_upstream_anthropic as anthropic_wire
from tests.support.fake_upstream_openai import openai_completion, openai_error, openai_stream_events
from tests.support.wait import wait_until

STALL_SECONDS = 3600.0  # an idle stall lasts until the client gives up (the handler is then cancelled)


@dataclass
class Reply:
    """What the fake answers to one request. Failure fields apply at the stated point of the reply."""
    content: str = "Hello from the fake upstream"
    events: int | None = None  # stream this many content pieces ("t0 ", "t1 ", ...) instead of `content`
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)  # e.g. {"Retry-After": "1"}
    error: str | None = None  # with status 200: an error object inside the 200 body
    body: str | None = None  # raw body sent as is (e.g. malformed JSON), overrides everything else
    usage: bool = True  # report usage (in the body, and in streams when asked for)
    reasoning: str | None = None  # reasoning_content before the content
    tool_calls: list[dict] | None = None  # OpenAI tool_calls (arguments streamed in two halves)
    finish_reason: str | None = None  # default: "tool_calls" when tool_calls are set, else "stop"
    first_byte_delay: float = 0.0  # seconds before the status line
    chunk_delay: float = 0.0  # seconds between stream events
    error_after: int | None = None  # streams: an error object event after this many content events
    malformed_after: int | None = None  # streams: a garbage event after this many content events
    reset_after: int | None = None  # streams: drop the connection after this many content events
    stall_after: int | None = None  # streams: stop sending (idle) after this many content events
    reset: bool = False  # drop the connection without any answer
    role_chunk: bool = True  # OpenAI streams: open with the role chunk (off: a failure point can come first)
    usage_extra: dict | None = None  # more usage fields (Anthropic's cache_read_input_tokens; OpenAI's
    # prompt_tokens_details), or OpenAI's counts replaced (prompt_tokens)

    def pieces(self) -> list[str]:
        if self.events is not None:
            return [f"t{i} " for i in range(self.events)]
        words = self.content.split(" ")
        return [w + " " for w in words[:-1]] + [words[-1]] if self.content else []

    def finish(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")

    @classmethod
    def from_dict(cls, data: dict) -> Reply:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Counters:
    def __init__(self):
        self.requests = 0
        self.chat_requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0  # content pieces actually written (one piece = one token)
        self.streams_completed = 0
        self.streams_aborted = 0  # the client went away mid-stream
        self.streams_broken = 0  # a scripted failure ended the stream
        self.requests_aborted = 0  # chat requests (streamed or not) whose client left before the end

    def as_dict(self) -> dict:
        return dict(vars(self))


def prompt_tokens(body: dict) -> int:
    """One token per whitespace-separated word of the messages: simple, and the same on both sides."""
    count = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            count += len(content.split())
        elif isinstance(content, list):
            count += sum(len(p.get("text", "").split()) for p in content if isinstance(p, dict))
    system = body.get("system")
    if isinstance(system, str):
        count += len(system.split())
    return max(count, 1)


class FakeUpstreamServer:
    """The aiohttp application and its state; runs on whatever loop starts it."""

    def __init__(self, default: Reply | None = None, require_key: str | None = None):
        self.default = default or Reply()
        self.require_key = require_key  # when set, requests with another secret get 401
        self.queue: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self.stats = Counters()
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/_stats", self.get_stats)
        self.app.router.add_post("/_script", self.post_script)
        self.app.router.add_post("/_reset", self.post_reset)
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)

    def next_reply(self) -> Reply:
        return self.queue.popleft() if self.queue else self.default

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict())

    async def post_script(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.queue.extend(Reply.from_dict(d) for d in (data if isinstance(data, list) else [data]))
        return web.json_response({"queued": len(self.queue)})

    async def post_reset(self, request: web.Request) -> web.Response:
        self.queue.clear()
        self.requests.clear()
        self.stats = Counters()
        return web.json_response({"ok": True})

    def authorized(self, request: web.Request) -> bool:
        if self.require_key is None:
            return True
        bearer = request.headers.get("Authorization", "")
        return bearer == f"Bearer {self.require_key}" or request.headers.get("x-api-key") == self.require_key

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path,
                                      {k.lower(): v for k, v in request.headers.items()}, body))
        self.stats.requests += 1
        path = request.path.rstrip("/")
        if not self.authorized(request):
            return web.json_response(openai_error("invalid api key", "invalid_api_key"), status=401)
        if path.endswith("/models") and request.method == "GET":
            return web.json_response({"object": "list", "data": [
                {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]})
        if request.method == "POST" and path.endswith("/images/generations"):
            return self.images(body)
        if request.method == "POST" and (path.endswith("/chat/completions") or path.endswith("/messages")):
            try:
                return await self.chat(request, body, anthropic=path.endswith("/messages"))
            except (asyncio.CancelledError, ConnectionError):
                self.stats.requests_aborted += 1
                raise
        return web.json_response(openai_error(f"no route {request.path}", "not_found"), status=404)

    def images(self, raw: bytes) -> web.Response:
        """OpenAI's images/generations: `n` URLs (b64_json when asked), the prompt as revised_prompt."""
        reply = self.next_reply()
        if reply.status != 200:
            return web.json_response(openai_error(reply.error or f"scripted status {reply.status}"),
                                     status=reply.status)
        if reply.body is not None:
            return web.Response(text=reply.body, content_type="application/json")
        body = orjson.loads(raw)
        key = "b64_json" if body.get("response_format") == "b64_json" else "url"
        data = [{key: f"https://images.fake/{i}.png" if key == "url" else "iVBORw0KGgo=",
                 "revised_prompt": body.get("prompt")} for i in range(int(body.get("n") or 1))]
        return web.json_response({"created": int(time.time()), "data": data})

    async def chat(self, request: web.Request, raw: bytes, anthropic: bool) -> web.StreamResponse:
        self.stats.chat_requests += 1
        reply = self.next_reply()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return web.json_response(openai_error("body is not JSON", "invalid_request_error"), status=400)
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if reply.reset:
            request.transport.abort()
            return web.Response()
        if reply.body is not None:
            return web.Response(status=reply.status, text=reply.body, headers=reply.headers,
                                content_type="application/json")
        if reply.status != 200 or (reply.error and not body.get("stream")):
            err = (anthropic_wire.error(reply.error or f"scripted status {reply.status}") if anthropic
                   else openai_error(reply.error or f"scripted status {reply.status}"))
            return web.json_response(err, status=reply.status, headers=reply.headers)
        prompt = prompt_tokens(body)
        self.stats.prompt_tokens += prompt
        model = body.get("model", "fake-model")
        if not body.get("stream"):
            pieces = reply.pieces()
            self.stats.completion_tokens += len(pieces)
            build = anthropic_wire.message if anthropic else openai_completion
            return web.Response(body=orjson.dumps(build(reply, model, prompt, pieces)),
                                headers=reply.headers, content_type="application/json")
        return await self.stream(request, body, reply, model, prompt, anthropic)

    async def stream(self, request: web.Request, body: dict, reply: Reply, model: str, prompt: int,
                     anthropic: bool) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **reply.headers})
        await response.prepare(request)
        include_usage = reply.usage and (anthropic or bool((body.get("stream_options") or {}).get("include_usage")))
        events = (anthropic_wire.stream_events(reply, model, prompt) if anthropic
                  else openai_stream_events(reply, model, prompt, include_usage))
        try:
            for kind, payload in events:
                if kind == "stall":
                    await asyncio.sleep(STALL_SECONDS)
                elif kind == "reset":
                    self.stats.streams_broken += 1
                    request.transport.abort()
                    return response
                if kind in ("stall", "reset"):
                    continue
                if reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
                await response.write(payload)
                if kind == "piece":
                    self.stats.completion_tokens += 1
                elif kind == "broken":
                    self.stats.streams_broken += 1
                    await response.write_eof()
                    return response
            await response.write_eof()
            self.stats.streams_completed += 1
        except (asyncio.CancelledError, ConnectionError):
            self.stats.streams_aborted += 1
            raise
        return response


class FakeUpstream:
    """A running fake in a background thread. `url` is the OpenAI-style base (ends in /v1)."""

    def __init__(self, server: FakeUpstreamServer, port: int, loop: asyncio.AbstractEventLoop, stop):
        self.server = server
        self.port = port
        self.root = f"http://127.0.0.1:{port}"
        self.url = self.root + "/v1"
        self._loop = loop
        self._stop = stop

    @property
    def requests(self) -> list[Recorded]:
        return self.server.requests

    @property
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.server.requests if r.method == "POST"]

    @property
    def default(self) -> Reply:
        return self.server.default

    @default.setter
    def default(self, reply: Reply) -> None:
        self.server.default = reply

    @property
    def require_key(self) -> str | None:
        return self.server.require_key

    @require_key.setter
    def require_key(self, key: str | None) -> None:
        self.server.require_key = key

    def script(self, *replies: Reply) -> None:
        """The next requests get these replies, in order; later ones get the default."""
        self._loop.call_soon_threadsafe(self.server.queue.extend, replies)

    def stats(self) -> dict:
        return self.server.stats.as_dict()

    def wait_for(self, predicate) -> dict:
        """Poll the stats until predicate(stats) holds; returns them (fails the test if they never do)."""
        def reached() -> dict | None:
            stats = self.stats()
            return stats if predicate(stats) else None
        return wait_until(reached, "the fake upstream to reach the expected state")

    def all_traffic(self) -> bytes:
        """Every header and body the fake received, for checking that a secret never arrived."""
        return b"\n".join(orjson.dumps(r.headers) + b"\n" + r.body for r in self.server.requests)

    def stop(self) -> None:
        self._stop()


async def _serve(server: FakeUpstreamServer, host: str, port: int) -> web.AppRunner:
    # handler_cancellation: a client that goes away cancels the handler at once, so aborts are seen
    runner = web.AppRunner(server.app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner


def start_fake_upstream(default: Reply | None = None, require_key: str | None = None) -> FakeUpstream:
    """Start a fake on a free port in a daemon thread; call `.stop()` when done."""
    server = FakeUpstreamServer(default, require_key)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    def run():
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(_serve(server, "127.0.0.1", 0))
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True, name="fake-upstream")
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the fake upstream did not start")

    def stop():
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    return FakeUpstream(server, state["port"], loop, stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="scriptable fake OpenAI/Anthropic upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay between stream events")
    parser.add_argument("--first-byte-ms", type=float, default=0.0, help="delay before each answer")
    parser.add_argument("--events", type=int, default=None, help="content events per answer")
    parser.add_argument("--require-key", default=os.environ.get("FAKE_UPSTREAM_KEY"))
    args = parser.parse_args(argv)
    default = Reply(events=args.events, chunk_delay=args.delay_ms / 1000, first_byte_delay=args.first_byte_ms / 1000)
    server = FakeUpstreamServer(default, args.require_key)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass

    async def run():
        await _serve(server, args.host, args.port)
        print(f"fake upstream listening on http://{args.host}:{args.port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
