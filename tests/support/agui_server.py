"""An AG-UI agent server on loopback, built with PyPI `ag-ui-protocol` as CloudBase agent servers are: it
serves `/send-message` (and the long route), `/chat/completions` and `/speech-to-text`, and tells a test
what it received on `GET /_last`. What a run does is the last user message:
- "slow": 40 text events, 0.1 s apart (time to kill it mid-run);
- "stall": RUN_STARTED, then nothing;
- "half": RUN_STARTED and one text event, then the connection ends without RUN_FINISHED;
- anything else: a short answer quoting it.

Run as `python -m tests.support.agui_server PORT` (a process a test can kill -9)."""
from __future__ import annotations

import asyncio
import sys

import orjson
from aiohttp import web
from ag_ui.core import (RunFinishedEvent, RunStartedEvent, TextMessageContentEvent, TextMessageEndEvent,
                        TextMessageStartEvent)
from ag_ui.encoder import EventEncoder

ENCODER = EventEncoder()


def encoded(event) -> bytes:
    return ENCODER.encode(event).encode()


async def send_message(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request.app["last"] = {"headers": {k.lower(): v for k, v in request.headers.items()}, "body": body,
                           "path": request.path}
    text = next((m.get("content") for m in reversed(body.get("messages") or []) if m.get("role") == "user"), "")
    thread, run = body.get("threadId", "t"), body.get("runId", "r")
    response = web.StreamResponse(headers={"Content-Type": ENCODER.get_content_type()})
    await response.prepare(request)
    await response.write(encoded(RunStartedEvent(thread_id=thread, run_id=run)))
    if text == "stall":
        await asyncio.sleep(3600)
    await response.write(encoded(TextMessageStartEvent(message_id="m1", role="assistant")))
    if text == "half":
        await response.write(encoded(TextMessageContentEvent(message_id="m1", delta="partial")))
        request.transport.close()  # the server dies mid-run: no RUN_FINISHED
        return response
    pieces = [f"part{i} " for i in range(40)] if text == "slow" else ["fronted ", "says: ", text]
    for piece in pieces:
        await response.write(encoded(TextMessageContentEvent(message_id="m1", delta=piece)))
        if text == "slow":
            await asyncio.sleep(0.1)
    await response.write(encoded(TextMessageEndEvent(message_id="m1")))
    await response.write(encoded(RunFinishedEvent(thread_id=thread, run_id=run)))
    return response


async def other(request: web.Request) -> web.Response:
    raw = await request.read()
    request.app["last"] = {"headers": {k.lower(): v for k, v in request.headers.items()}, "path": request.path,
                           "body": raw.decode(errors="replace"), "query": request.query_string}
    return web.json_response({"served": request.path, "method": request.method, "got": raw.decode(errors="replace")})


async def last(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(request.app.get("last")), content_type="application/json")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/send-message", send_message)
    app.router.add_post("/v1/aibot/bots/{agent}/send-message", send_message)
    app.router.add_get("/_last", last)
    app.router.add_route("*", "/{tail:.*}", other)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(sys.argv[1]), print=None, handle_signals=True)
