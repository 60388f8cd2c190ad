"""`/v1/cloudrun/{service}/messages` (and `/mcp`): MCP over Streamable HTTP, the older HTTP+SSE transport, and
plain JSON-RPC POST. HTTP only here: what to answer is core.mcp_gateway's, framing protocol.mcp_jsonrpc's,
writing the shared stream pump's (http/coalesce.py)."""
from __future__ import annotations


from urllib.parse import parse_qs

import orjson

from cbgate.core.auth import presented_authorization
from cbgate.core.mcp_bridge import McpBridge
from cbgate.core.mcp_gateway import McpAnswer, McpGateway, McpStream
from cbgate.errors import CloudBaseError, InvalidPath, MethodNotAllowed
from cbgate.http.coalesce import CoalescedChunks
from cbgate.http.exchange import JSON_HEADERS, Exchange
from cbgate.protocol.mcp_jsonrpc import SSE_HEADERS, McpMessageInvalid, parse_body, rpc_error, sse_event
from cbgate.providers.mcp_upstream import FORWARDED, FORWARDED_PREFIX, McpUpstreamRefused

TAILS = (("messages",), ("mcp",))
ALLOWED = "GET, POST, DELETE"
SESSION_HEADER = b"mcp-session-id"


def _frame(event) -> bytes:
    return sse_event(event.message, event.event_id)


class McpRoutes:
    def __init__(self, gateway: McpGateway, max_body_bytes: int):
        self.gateway = gateway
        self.bridge = McpBridge(gateway)
        self.max_body_bytes = max_body_bytes

    async def handle(self, ex: Exchange, service: str, tail: tuple[str, ...]) -> None:
        if tail not in TAILS:
            raise InvalidPath(f"no such path: {ex.scope['path']}; MCP is served at /v1/cloudrun/{service}/messages")
        method = ex.scope["method"]
        if method not in ("GET", "POST", "DELETE"):
            raise MethodNotAllowed(method, ("DELETE", "GET", "POST"))
        if method == "POST":
            ex.refuse_declared_size_over(self.max_body_bytes)
        caller = self.gateway.caller(presented_authorization(ex.header(b"authorization"), ex.header(b"x-api-key")),
                                     ex.header(b"host"), service, ex.request_id)
        token = ex.header(SESSION_HEADER)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in ex.headers.items()
                   if k.decode("latin-1") in FORWARDED or k.startswith(FORWARDED_PREFIX.encode())}
        try:
            if method == "POST":
                return await self.post(ex, caller, headers, token)
            if method == "DELETE":
                return await self.render(ex, await self.gateway.end_session(caller, headers, token))
            if token is None and tail == ("messages",):
                return await self.sse_transport(ex, caller, headers, service)
            ex.cancel_on_disconnect()
            return await self.render(ex, await self.gateway.listen(caller, headers, token))
        except McpUpstreamRefused as refused:  # the server's own answer (its unknown session: 404), as it is
            if not refused.body.strip() or refused.content_type != "application/json":
                raise  # nothing of its own worth passing on: our body, with the server's status
            await ex.reply(refused.status, refused.body, [(b"content-type", b"application/json")])

    async def post(self, ex: Exchange, caller, headers: dict[str, str], token: str | None) -> None:
        body = await ex.read_body(self.max_body_bytes)
        try:
            messages, batch = parse_body(body)
        except McpMessageInvalid as err:
            return await ex.reply(400, orjson.dumps(rpc_error(None, err, ex.request_id)), JSON_HEADERS)
        bridged = parse_qs(ex.scope.get("query_string", b"").decode("latin-1")).get("sessionId")
        if bridged:  # an SSE-transport client: answered on its stream
            self.bridge.post(caller, bridged[-1], messages, batch)
            return await ex.reply(202, b"", [(b"content-type", b"text/plain")])
        ex.cancel_on_disconnect()  # a client that leaves releases its calls' slots at once
        stream_ok = "text/event-stream" in (headers.get("accept") or "")
        await self.render(ex, await self.gateway.post(caller, messages, batch, headers, token, stream_ok))

    async def render(self, ex: Exchange, answer: McpAnswer | McpStream) -> None:
        session = [(SESSION_HEADER, answer.session.encode())] if answer.session else []
        if isinstance(answer, McpAnswer):
            if answer.body is None:
                return await ex.reply(answer.status, b"", [(b"content-type", b"application/json")] + session)
            return await ex.reply(answer.status, orjson.dumps(answer.body), JSON_HEADERS + session)
        await self.pump(ex, CoalescedChunks(answer.events, _frame), session)

    async def pump(self, ex: Exchange, chunks: CoalescedChunks, headers: list) -> None:
        try:
            await ex.start(200, SSE_HEADERS + headers)
            async for events in chunks.batches():
                await ex.send({"type": "http.response.body", "body": events, "more_body": True})
        except CloudBaseError as err:  # a failure inside the stream: its messages already carried the errors
            await ex.send({"type": "http.response.body", "body": sse_event(rpc_error(None, err, ex.request_id)),
                           "more_body": True})
        finally:
            await chunks.aclose()
        await ex.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def sse_transport(self, ex: Exchange, caller, headers: dict[str, str], service: str) -> None:
        """The older HTTP+SSE transport: the first event names where to POST, the answers follow."""
        session = self.bridge.open(caller)
        ex.cancel_on_disconnect()
        endpoint = f"/v1/cloudrun/{service}/messages?sessionId={session.token}".encode()
        events = self.bridge.events(caller, session, headers)
        chunks = CoalescedChunks(events, _frame)
        try:
            await ex.start(200, SSE_HEADERS)
            await ex.send({"type": "http.response.body", "body": b"event: endpoint\ndata: " + endpoint + b"\n\n",
                           "more_body": True})
            async for batch in chunks.batches():
                await ex.send({"type": "http.response.body", "body": batch, "more_body": True})
        finally:
            await chunks.aclose()



