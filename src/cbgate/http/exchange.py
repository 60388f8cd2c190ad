"""One HTTP exchange over raw ASGI: headers, a size-limited body, JSON and error replies."""
from __future__ import annotations

import asyncio
import math
import os
import time

import orjson

from cbgate.errors import CloudBaseError, InvalidParam, MethodNotAllowed, PayloadTooLarge, error_body

JSON_HEADERS = [(b"content-type", b"application/json; charset=utf-8")]
# A refusal sent while the client is still sending its body is lost when the server then closes with
# unread data (the kernel resets the connection; urllib, which asks for `Connection: close`, saw a reset
# instead of the 413). So the unread rest is read and dropped first, up to these bounds.
DISCARD_LIMIT = 64 * 1024 * 1024
DISCARD_SECONDS = 10.0


class Exchange:
    __slots__ = ("scope", "receive", "send", "request_id", "headers", "started", "watcher", "error_body",
                 "status", "began", "body_done")

    def __init__(self, scope, receive, send):
        self.scope = scope
        self.receive = receive
        self.send = send
        self.request_id = os.urandom(12).hex()
        self.headers = {k: v for k, v in scope["headers"]}  # raw lower-case byte names
        self.started = False
        self.status = 0  # the status sent, for the access log
        self.began = time.monotonic()
        self.watcher: asyncio.Task | None = None
        self.body_done = False  # the request body has been read to its end (or is being watched)
        self.error_body = error_body  # a surface with its own error envelope (Messages) sets its renderer

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None

    def refuse_declared_size_over(self, limit: int) -> None:
        """Refuse a body whose Content-Length is over `limit` before reading any of it."""
        declared = self.headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the request body is {int(declared)} bytes, over the limit of {limit}")

    async def read_body(self, limit: int) -> bytes:
        """The whole body, refused as soon as it is known or grows to be over `limit`."""
        self.refuse_declared_size_over(limit)
        parts, size = [], 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ConnectionAbortedError("client went away while sending the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the request body is over the limit of {limit} bytes")
            parts.append(chunk)
            if not message.get("more_body"):
                self.body_done = True
                return b"".join(parts)

    async def read_json_object(self, limit: int) -> dict:
        return json_object(await self.read_body(limit))

    def cancel_on_disconnect(self) -> None:
        """Once the body is read, cancel this request's task the moment the client disconnects, so
        the engine or upstream stops at once and the slot is released."""
        task = asyncio.current_task()
        self.body_done = True  # what is left of the body is the watcher's to read (or dropped)
        on_disconnect = self.scope.get("cbgate.on_disconnect")
        if on_disconnect is not None:  # the gateway's server protocol calls back: no task reading receive()
            on_disconnect(task.cancel)
            return

        async def watch():
            while (await self.receive())["type"] != "http.disconnect":
                pass
            task.cancel()

        self.watcher = asyncio.create_task(watch())

    def stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        self.status = status
        await self.send({"type": "http.response.start", "status": status,
                         "headers": headers + [(b"x-request-id", self.request_id.encode())]})

    async def reply(self, status: int, body: bytes, headers=JSON_HEADERS) -> None:
        await self.start(status, headers + [(b"content-length", str(len(body)).encode())])
        await self.send({"type": "http.response.body", "body": body})

    async def reply_json(self, obj, status: int = 200) -> None:
        await self.reply(status, orjson.dumps(obj))

    def body_unread(self) -> bool:
        return not self.body_done and (b"content-length" in self.headers or b"transfer-encoding" in self.headers)

    async def discard_unread_body(self) -> None:
        """Read and drop what the client is still sending, within DISCARD_LIMIT and DISCARD_SECONDS."""
        if not self.body_unread():
            return
        self.body_done = True
        dropped = 0
        try:
            async with asyncio.timeout(DISCARD_SECONDS):
                while dropped <= DISCARD_LIMIT:
                    message = await self.receive()
                    dropped += len(message.get("body", b""))
                    if message["type"] != "http.request" or not message.get("more_body"):
                        return
        except TimeoutError:
            return

    async def reply_error(self, err: CloudBaseError) -> None:
        """The error body, whole, at once; when the client is still sending its body, the rest of it is
        then read and dropped before the response ends (so the connection is not reset under it)."""
        headers = JSON_HEADERS
        if err.retry_after is not None:
            headers = headers + [(b"retry-after", str(max(1, math.ceil(err.retry_after))).encode())]
        if isinstance(err, MethodNotAllowed):  # RFC 9110: a 405 names the methods the path takes
            headers = headers + [(b"allow", ", ".join(err.allow).encode())]
        body = orjson.dumps(self.error_body(err, self.request_id))
        if not self.body_unread():
            return await self.reply(err.status, body, headers)
        await self.start(err.status, headers + [(b"content-length", str(len(body)).encode())])
        await self.send({"type": "http.response.body", "body": body, "more_body": True})
        await self.discard_unread_body()
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})


def json_object(raw: bytes) -> dict:
    """A request body that must be one JSON object (every JSON body the gateway reads is one)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidParam(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidParam("the request body must be a JSON object")
    return body
