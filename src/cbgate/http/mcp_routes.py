"""`/v1/cloudrun/{service}/messages` (and `/mcp`): MCP over Streamable HTTP, the older HTTP+SSE transport, and
plain JSON-RPC POST, as rows of the one route table (`mcp_rows`: 404 and 405 with Allow are the table's).
HTTP only here: what to answer is core.mcp_gateway's, the wire format the MCP surface contract's
(protocol/mcp_jsonrpc.py), writing the one stream pump's (http/stream_pump.py)."""
from __future__ import annotations

from urllib.parse import parse_qs

import orjson

from cbgate.core.mcp_bridge import McpBridge
from cbgate.core.mcp_calls import McpCaller
from cbgate.core.mcp_gateway import McpAnswer, McpGateway, McpStream
from cbgate.core.shutdown import ShutdownDeadline
from cbgate.http.exchange import JSON_HEADERS, Exchange
from cbgate.http.route_table import Route
from cbgate.http.stream_pump import pump
from cbgate.protocol.mcp_jsonrpc import MCP, McpMessageInvalid, endpoint_event
from cbgate.providers.mcp_upstream import FORWARDED, FORWARDED_PREFIX, McpUpstreamRefused

SESSION_HEADER = b"mcp-session-id"
PATHS = ("/v1/cloudrun/{service}/messages", "/v1/cloudrun/{service}/mcp")


def mcp_rows(routes: McpRoutes) -> list[Route]:
    """The MCP surface's rows: one per path a client may be configured with."""
    methods = {"GET": routes.listen, "POST": routes.post, "DELETE": routes.end}
    return [Route(path, methods, MCP.error_body) for path in PATHS]


def _forwarded(ex: Exchange) -> dict[str, str]:
    """The client's headers the server is meant to see (MCP's own); nothing else leaves the gateway."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in ex.headers.items()
            if k.decode("latin-1") in FORWARDED or k.startswith(FORWARDED_PREFIX.encode())}


class McpRoutes:
    def __init__(self, gateway: McpGateway, max_body_bytes: int, deadline: ShutdownDeadline):
        self.gateway = gateway
        self.bridge = McpBridge(gateway)
        self.max_body_bytes = max_body_bytes
        self.deadline = deadline  # the process's: a stream cut at shutdown ends with a JSON-RPC error

    def caller(self, ex: Exchange, params: dict) -> McpCaller:
        """The auth preamble, in the surface's envelope: the key as the surface reads it, then the service."""
        return self.gateway.caller(MCP.credentials(ex.header(b"authorization"), ex.header(b"x-api-key")),
                                   ex.header(b"host"), params["service"], ex.request_id)

    async def post(self, ex: Exchange, params: dict) -> None:
        ex.refuse_declared_size_over(self.max_body_bytes)
        caller = self.caller(ex, params)
        try:
            messages, batch = MCP.parse(await ex.read_body(self.max_body_bytes))
        except McpMessageInvalid as err:
            return await ex.reply(400, orjson.dumps(MCP.rpc_error_body(err, ex.request_id)), JSON_HEADERS)
        headers = _forwarded(ex)
        bridged = parse_qs(ex.scope.get("query_string", b"").decode("latin-1")).get("sessionId")
        if bridged:  # an SSE-transport client: answered on its stream
            self.bridge.post(caller, bridged[-1], messages, batch)
            return await ex.reply(202, b"", [(b"content-type", b"text/plain")])
        ex.cancel_on_disconnect()  # a client that leaves releases its calls' slots at once
        stream_ok = "text/event-stream" in (headers.get("accept") or "")
        await self._answer(ex, lambda: self.gateway.post(caller, messages, batch, headers,
                                                         ex.header(SESSION_HEADER), stream_ok))

    async def listen(self, ex: Exchange, params: dict) -> None:
        """The server's own stream (Streamable HTTP), or with no session on `/messages` the SSE transport."""
        caller = self.caller(ex, params)
        token = ex.header(SESSION_HEADER)
        ex.cancel_on_disconnect()
        if token is None and ex.scope["path"].rstrip("/").endswith("/messages"):
            session = self.bridge.open(caller)
            endpoint = endpoint_event(f"/v1/cloudrun/{params['service']}/messages?sessionId={session.token}")
            stream = McpStream(self.bridge.events(caller, session, _forwarded(ex), first=endpoint))
            return await pump(ex, stream, MCP.stream(None, ex.request_id), self.deadline)
        await self._answer(ex, lambda: self.gateway.listen(caller, _forwarded(ex), token))

    async def end(self, ex: Exchange, params: dict) -> None:
        caller = self.caller(ex, params)
        await self._answer(ex, lambda: self.gateway.end_session(caller, _forwarded(ex), ex.header(SESSION_HEADER)))

    async def _answer(self, ex: Exchange, answer) -> None:
        try:
            result = await answer()
        except McpUpstreamRefused as refused:  # the server's own answer (its unknown session: 404), as it is
            if not refused.body.strip() or refused.content_type != "application/json":
                raise  # nothing of its own worth passing on: our body, with the server's status
            return await ex.reply(refused.status, refused.body, [(b"content-type", b"application/json")])
        await self.render(ex, result)

    async def render(self, ex: Exchange, answer: McpAnswer | McpStream) -> None:
        session = [(SESSION_HEADER, answer.session.encode())] if answer.session else []
        if isinstance(answer, McpStream):
            return await pump(ex, answer, MCP.stream(None, ex.request_id), self.deadline, headers=session)
        if answer.body is None:
            return await ex.reply(answer.status, b"", [(b"content-type", b"application/json")] + session)
        await ex.reply(answer.status, orjson.dumps(MCP.render(None, answer.body, ex.request_id)),
                       JSON_HEADERS + session)
