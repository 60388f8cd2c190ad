"""MCP tools as a model sees them, for the agents the gateway runs: the JSON-RPC messages a run sends as an MCP
client (initialize, tools/list, tools/call), an MCP tool as an OpenAI function named `service__tool`, and a
tool's answer (or a JSON-RPC error) as the text of a tool message."""
from __future__ import annotations

import re

import orjson
from mcp_types import LATEST_PROTOCOL_VERSION

SEPARATOR = "__"  # MCP service names have no "_", so the first "__" splits a function name unambiguously
FUNCTION_NAME = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")  # what OpenAI-protocol models accept as a tool name
MAX_DESCRIPTION = 4096
MAX_RESULT_CHARS = 64 * 1024  # of a tool's answer, as the model reads it
CLIENT_INFO = {"name": "cbgate-agent", "version": "1"}
EMPTY_SCHEMA = {"type": "object", "properties": {}}


def request(request_id: int, method: str, params: dict | None = None) -> dict:
    message = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def initialize(request_id: int) -> dict:
    return request(request_id, "initialize", {"protocolVersion": LATEST_PROTOCOL_VERSION, "capabilities": {},
                                              "clientInfo": CLIENT_INFO})


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def function_name(service: str, tool: str) -> str | None:
    """The name a model calls `tool` of `service` by; None when no model could call it by a name (the tool is
    then not offered)."""
    name = service + SEPARATOR + tool
    return name if FUNCTION_NAME.match(name) else None


def split_name(name: str) -> tuple[str, str] | None:
    """(service, tool) of a function name made by `function_name`, or None."""
    service, sep, tool = name.partition(SEPARATOR)
    return (service, tool) if sep and service and tool else None


def function_tool(name: str, tool: dict) -> dict:
    """One tool of a tools/list result as an OpenAI function tool."""
    schema = tool.get("inputSchema")
    description = tool.get("description")
    return {"type": "function", "function": {
        "name": name, "description": description[:MAX_DESCRIPTION] if isinstance(description, str) else "",
        "parameters": schema if isinstance(schema, dict) and schema.get("type") == "object" else EMPTY_SCHEMA}}


def result_text(message: dict) -> tuple[str, bool]:
    """A tools/call answer as the model reads it, and whether it is an error (a JSON-RPC error, or a result the
    tool marked `isError`)."""
    error = message.get("error")
    if error is not None:
        said = error.get("message") if isinstance(error, dict) else None
        return _bounded(f"error: {said if isinstance(said, str) else 'the tool call failed'}"), True
    result = message.get("result")
    if not isinstance(result, dict):
        return "error: the MCP server answered without a result", True
    parts = result.get("content") if isinstance(result.get("content"), list) else []
    texts = [p["text"] if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
             else orjson.dumps(p).decode() for p in parts]
    if not texts and result.get("structuredContent") is not None:
        texts = [orjson.dumps(result["structuredContent"]).decode()]
    return _bounded("\n".join(texts)), result.get("isError") is True


def _bounded(text: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return text[:MAX_RESULT_CHARS] + f"\n[cut: the tool answered {len(text)} characters]"
