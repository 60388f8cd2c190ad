"""What one API key may reach, as ONE value, evaluated at dispatch in one function per kind of thing.

A key's allow-lists live together in `KeyPermissions` (stored as one JSON column on the key). There is no
second field that could grant what this one took away: a grant revoked here is revoked everywhere
(LiteLLM's "effective access = union of both fields" re-granted revoked servers).

MCP, per key:
- no list (`mcp is None`): a server key may use every MCP service of its environment, a publishable key none;
- a list: exactly these services, each with its tools or `*` for all of them; anything else is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from cbgate.errors import InvalidParam, PermissionDenied

ALL_TOOLS = "*"
SERVICE_NAME = re.compile(r"\A[a-z][a-z0-9-]{0,62}\Z")
TOOL_NAME = re.compile(r"\A[A-Za-z0-9_./-]{1,128}\Z")  # MCP's tool name rule (SEP-986)
MAX_SERVICES = 100
MAX_TOOLS = 500


@dataclass(frozen=True, slots=True)
class KeyPermissions:
    # service -> frozenset of tool names, or ALL_TOOLS; None: the default for the key's kind
    mcp: dict[str, frozenset[str] | str] | None = None

    def to_json(self) -> str | None:
        if self.mcp is None:
            return None
        return orjson.dumps({"mcp": self.mcp_view()}).decode()

    def mcp_view(self) -> dict[str, list[str] | str] | None:
        """The MCP list as the CLI and the admin API show it (sorted tools, or "*")."""
        if self.mcp is None:
            return None
        return {svc: tools if tools == ALL_TOOLS else sorted(tools) for svc, tools in sorted(self.mcp.items())}


DEFAULT = KeyPermissions()


def from_json(text: str | None) -> KeyPermissions:
    """The stored value; one that cannot be read grants nothing (fail closed, never open)."""
    if not text:
        return DEFAULT
    try:
        return KeyPermissions(mcp=mcp_grants(orjson.loads(text).get("mcp")))
    except (orjson.JSONDecodeError, AttributeError, InvalidParam):
        return KeyPermissions(mcp={})


def mcp_grants(value: object) -> dict[str, frozenset[str] | str] | None:
    """{service: [tools] | "*"} (the admin API's form) checked into the stored form; None stays None."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_SERVICES:
        raise InvalidParam(f"mcp must be an object of at most {MAX_SERVICES} services: "
                           "{\"service\": [\"tool\", ...] or \"*\"}")
    grants: dict[str, frozenset[str] | str] = {}
    for service, tools in value.items():
        if not isinstance(service, str) or not SERVICE_NAME.match(service):
            raise InvalidParam(f"mcp service name {ascii(service)[:80]} is not valid "
                               "(lower-case letters, digits and '-', starting with a letter)")
        if tools == ALL_TOOLS:
            grants[service] = ALL_TOOLS
            continue
        if not isinstance(tools, list) or not tools or len(tools) > MAX_TOOLS:
            raise InvalidParam(f"mcp service {service}: give a list of 1-{MAX_TOOLS} tool names, or \"*\"")
        for tool in tools:
            if not isinstance(tool, str) or not TOOL_NAME.match(tool):
                raise InvalidParam(f"mcp tool name {ascii(tool)[:80]} is not valid (letters, digits, _ . / -)")
        grants[service] = frozenset(tools)
    return grants


def parse_mcp_specs(specs: list[str]) -> dict[str, frozenset[str] | str]:
    """The CLI's `--mcp 'svc:tool_a,tool_b'` / `--mcp 'svc:*'` (repeatable, one service each)."""
    value: dict[str, list[str] | str] = {}
    for spec in specs:
        service, sep, tools = spec.partition(":")
        service, tools = service.strip(), tools.strip()
        if not sep or not tools:
            raise InvalidParam(f"--mcp {ascii(spec)[:80]} must be SERVICE:TOOL[,TOOL...] or SERVICE:*")
        if service in value:
            raise InvalidParam(f"--mcp names service {service!r} twice; list all its tools in one --mcp")
        value[service] = ALL_TOOLS if tools == ALL_TOOLS else [t.strip() for t in tools.split(",") if t.strip()]
    return mcp_grants(value) or {}


def may_use_service(perms: KeyPermissions, kind: str, service: str) -> bool:
    if perms.mcp is None:
        return kind == "server"
    return service in perms.mcp


def may_call_tool(perms: KeyPermissions, kind: str, service: str, tool: str) -> bool:
    """THE decision for an MCP tool: every tools/call, every tools/list entry and every agent's call asks here."""
    if perms.mcp is None:
        return kind == "server"
    granted = perms.mcp.get(service)
    return granted is not None and (granted == ALL_TOOLS or tool in granted)


def require_tool(perms: KeyPermissions, kind: str, service: str, tool: str) -> None:
    if not may_call_tool(perms, kind, service, tool):
        raise PermissionDenied(f"this API key may not call tool {ascii(tool)[1:-1][:128]} of MCP service {service}")
