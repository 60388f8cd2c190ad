"""The MCP surface's contract (`MCP`, a protocol.surface.Surface): JSON-RPC 2.0 messages in, read by MCP's
own types (PyPI `mcp`'s `mcp_types`); out, messages as JSON or as MCP's server-sent events (`event: message`
with the server's event ids, for resumption), and its error envelope: a JSON-RPC error whose `data` is the
CloudBase body {code, message, requestId}, so MCP clients and CloudBase clients both find what they look for.

Messages are forwarded as the client sent them; the gateway reads only what it decides on (a request's
method and id, a tools/call's tool name, a tools/list result's tools).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from mcp_types import jsonrpc_message_adapter
from mcp_types.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, REQUEST_TIMEOUT
from pydantic import ValidationError

from cbgate.errors import CloudBaseError, InvalidParam, error_body
from cbgate.protocol.surface import Surface

MAX_BATCH = 64
PERMISSION_ERROR = -32003  # a server-defined JSON-RPC code: the key may not call this
UPSTREAM_ERROR = -32002  # the MCP server failed (unreachable, garbage, stalled)


class McpMessageInvalid(InvalidParam):
    """A body that is not JSON-RPC as MCP speaks it; `rpc_code` is the JSON-RPC code it is answered with."""

    def __init__(self, message: str, rpc_code: int = INVALID_REQUEST):
        super().__init__(message)
        self.rpc_code = rpc_code


@dataclass(frozen=True, slots=True)
class Message:
    raw: dict[str, Any]  # as the client (or server) sent it: what is forwarded
    method: str | None
    id: str | int | None
    tool: str | None = None  # a tools/call's tool name

    @property
    def is_request(self) -> bool:
        return self.method is not None and "id" in self.raw

    @property
    def is_response(self) -> bool:
        return self.method is None


def read_message(item: Any) -> Message:
    """One JSON-RPC message, validated by MCP's types; a tools/call must name its tool."""
    try:
        jsonrpc_message_adapter.validate_python(item)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {}
        raise McpMessageInvalid(f"not a JSON-RPC 2.0 message: {first.get('msg', 'invalid')}"[:300]) from None
    method = item.get("method")
    tool = None
    if method == "tools/call":
        params = item.get("params")
        tool = params.get("name") if isinstance(params, dict) else None
        if not isinstance(tool, str) or not tool:
            raise McpMessageInvalid("tools/call needs params.name, the tool to call", INVALID_PARAMS)
    return Message(item, method if isinstance(method, str) else None, item.get("id"), tool)


def parse_body(body: bytes) -> tuple[list[Message], bool]:
    """The messages of a POST body and whether it came as a batch (an array)."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise McpMessageInvalid(f"the body is not valid JSON: {exc}"[:300], PARSE_ERROR) from None
    if isinstance(decoded, list):
        if not decoded or len(decoded) > MAX_BATCH:
            raise McpMessageInvalid(f"a batch holds 1-{MAX_BATCH} messages")
        return [read_message(item) for item in decoded], True
    if not isinstance(decoded, dict):
        raise McpMessageInvalid("the body must be a JSON-RPC message (an object) or a batch of them")
    return [read_message(decoded)], False


def rpc_code_of(err: CloudBaseError) -> int:
    if isinstance(err, McpMessageInvalid):
        return err.rpc_code
    if err.code in ("PERMISSION_DENIED", "INVALID_ENV"):
        return PERMISSION_ERROR
    if err.code == "AI_MODEL_REQUEST_FAILED":
        return REQUEST_TIMEOUT if err.status == 504 else UPSTREAM_ERROR
    if err.status < 500:
        return INVALID_REQUEST
    return INTERNAL_ERROR


def rpc_error(request_id: str | int | None, err: CloudBaseError, gateway_request_id: str) -> dict:
    """A JSON-RPC error answering `request_id`, the CloudBase body in its data."""
    body = error_body(err, gateway_request_id)
    body.pop("error", None)
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": rpc_code_of(err), "message": err.message,
                                                          "data": body}}


def mcp_error_body(err: CloudBaseError, gateway_request_id: str) -> dict:
    """The envelope of every refusal on this surface before any message was read (HTTP level): the CloudBase
    body, which is also what `data` of a JSON-RPC error carries. Clients read the status; people read this."""
    return error_body(err, gateway_request_id)


def sse_event(message: dict | bytes, event_id: str | None = None) -> bytes:
    """One MCP message as a server-sent event (`event: message`), with its id for resumption."""
    data = message if isinstance(message, bytes) else orjson.dumps(message)
    head = b"event: message\n" + (b"id: " + event_id.encode() + b"\n" if event_id else b"")
    return head + b"data: " + data + b"\n\n"


def filtered_tools(result: Any, allowed) -> Any:
    """A tools/list result with only the tools `allowed(name)` says yes to."""
    if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
        return result
    kept = [t for t in result["tools"] if isinstance(t, dict) and isinstance(t.get("name"), str) and allowed(t["name"])]
    return {**result, "tools": kept}


def endpoint_event(url: str) -> bytes:
    """The SSE transport's first event: where the client POSTs its messages."""
    return b"event: endpoint\ndata: " + url.encode() + b"\n\n"


class McpStreamRender:
    """One MCP event stream's framing (protocol.surface.StreamRender): each message an `event: message` with
    its event id (an item already framed, the SSE transport's `endpoint` event, goes as it is); a stream that
    breaks after its 200 ends with one JSON-RPC error (no id: it answers no single request)."""

    def __init__(self, request_id: str):
        self.request_id = request_id

    def start(self) -> bytes:
        return b""

    def feed(self, event) -> bytes:
        if isinstance(event, bytes):
            return event
        return sse_event(event.message, event.event_id)

    def finish(self) -> bytes:
        return b""

    def failure(self, err: CloudBaseError) -> bytes:
        return sse_event(rpc_error(None, err, self.request_id))


class McpSurface(Surface):
    name = "mcp"
    api_key_header = True  # MCP clients configured for other gateways send x-api-key

    def parse(self, body: bytes) -> tuple[list[Message], bool]:  # the raw body: a message or a batch
        return parse_body(body)

    def render(self, req, answer, request_id: str):
        return answer  # messages go back as the server (or the gateway) wrote them

    def stream(self, req, request_id: str) -> McpStreamRender:
        return McpStreamRender(request_id)

    def rpc_error_body(self, err: CloudBaseError, request_id: str) -> dict:
        """A body the gateway refused as JSON-RPC (malformed): the JSON-RPC error, CloudBase body inside."""
        return rpc_error(None, err, request_id)


MCP = McpSurface()
