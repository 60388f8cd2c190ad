"""What one API key may reach, as ONE value, evaluated at dispatch in one function per kind of thing.

A key's allow-lists live together in `KeyPermissions` (stored as one JSON column on the key), with the key's
own limits. There is no second field that could grant what this one took away: a grant revoked here is
revoked everywhere (LiteLLM's "effective access = union of both fields" re-granted revoked servers).

Models, per key (issue 21): no list (`models is None`): every model its environment may call; a list of
`group/model` names: exactly these, on every surface (`permit_model`, the one check, runs on the model
service's way to any model). Limits: the key's own concurrency, requests per minute and token quota, admitted
together with its environment's (core/model_service.py); what a limit may be set to is limits/values.py's.

MCP, per key:
- no list (`mcp is None`): a server key may use every MCP service of its environment, a publishable key none;
- a list: exactly these services, each with its tools or `*` for all of them; anything else is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import orjson

from cbgate.core.key_kinds import KeyKind, Right, may
from cbgate.errors import InvalidParam, PermissionDenied
from cbgate.limits.base import EnvLimits
from cbgate.limits.values import limit_value
from cbgate.text import text_problem

ALL_TOOLS = "*"
SERVICE_NAME = re.compile(r"\A[a-z][a-z0-9-]{0,62}\Z")
TOOL_NAME = re.compile(r"\A[A-Za-z0-9_./-]{1,128}\Z")  # MCP's tool name rule (SEP-986)
MAX_SERVICES = 100
MAX_TOOLS = 500
MAX_MODELS = 1000
LIMIT_FIELDS = ("concurrency", "rpm", "token_quota")
OWN = "none of its own"  # what a key's limit set to None means


@dataclass(frozen=True, slots=True)
class KeyPermissions:
    # service -> frozenset of tool names, or ALL_TOOLS; None: the default for the key's kind
    mcp: dict[str, frozenset[str] | str] | None = None
    models: frozenset[str] | None = None  # "group/model" the key may call; None: every model of its env
    concurrency: int | None = None  # the key's own limits, under its environment's (None: none of its own)
    rpm: int | None = None
    token_quota: int | None = None  # tokens the key may use in all

    def to_json(self) -> str | None:
        if self == DEFAULT:
            return None
        parts = {"mcp": self.mcp_view(), **self.model_view()}
        return orjson.dumps({name: value for name, value in parts.items() if value is not None}).decode()

    def mcp_view(self) -> dict[str, list[str] | str] | None:
        """The MCP list as the CLI and the admin API show it (sorted tools, or "*")."""
        if self.mcp is None:
            return None
        return {svc: tools if tools == ALL_TOOLS else sorted(tools) for svc, tools in sorted(self.mcp.items())}

    def model_view(self) -> dict:
        """The model allow-list (sorted, or None) and the key's own limits, as the CLI and the API show them."""
        return {"models": sorted(self.models) if self.models is not None else None,
                **{name: getattr(self, name) for name in LIMIT_FIELDS}}

    @property
    def limits(self) -> EnvLimits | None:
        """The key's own limits as a limiter scope, or None when it has none (no second scope to check)."""
        if self.concurrency is None and self.rpm is None and self.token_quota is None:
            return None
        return EnvLimits(concurrency=self.concurrency, rpm=self.rpm, tpm=None, token_quota=self.token_quota)

    def allows_model(self, group: str, model: str) -> bool:
        return self.models is None or f"{group}/{model}" in self.models


DEFAULT = KeyPermissions()


def from_json(text: str | None) -> KeyPermissions:
    """The stored value; one that cannot be read grants nothing (fail closed, never open)."""
    if not text:
        return DEFAULT
    try:
        data = orjson.loads(text)
        return KeyPermissions(mcp=mcp_grants(data.get("mcp")), models=model_grants(data.get("models")),
                              **{name: limit_value(name, data.get(name), OWN) for name in LIMIT_FIELDS})
    except (orjson.JSONDecodeError, AttributeError, InvalidParam):
        return KeyPermissions(mcp={}, models=frozenset())


def model_grants(value: object) -> frozenset[str] | None:
    """`group/model` names (a list, or the CLI's comma-separated string) -> the allow-list; None or "*": every
    model of the key's environment."""
    if value is None or value == "*":
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items) or len(items) > MAX_MODELS:
        raise InvalidParam(f"models must be a list of at most {MAX_MODELS} group/model names, "
                           "e.g. [\"cloudbase/hunyuan-turbos\"], or null for every model")
    models = frozenset(i.strip() for i in items if i.strip())
    for name in models:
        group, _, model = name.partition("/")
        if text_problem(name, 200) or not group or not model:
            raise InvalidParam(f"allow-list entry {ascii(name)[:80]} must be group/model, e.g. cloudbase/hunyuan-turbos")
    return models


def changed(perms: KeyPermissions, changes: dict) -> KeyPermissions:
    """`perms` with the parts given replaced (each part whole: `mcp`, `models`, a limit); the others stay, so
    changing one part can never hand back what another took away."""
    values = {}
    for name, value in changes.items():
        if name == "mcp":
            values["mcp"] = mcp_grants(value)
        elif name == "models":
            values["models"] = model_grants(value)
        elif name in LIMIT_FIELDS:
            values[name] = limit_value(name, value, OWN)
        else:
            raise InvalidParam(f"unknown permission {name!r}; a key has mcp, models, {', '.join(LIMIT_FIELDS)}")
    return replace(perms, **values)


def permit_model(perms: KeyPermissions, group: str, model: str) -> None:
    """THE decision for a model: every surface's request (chat, Messages, Responses, images) asks here."""
    if not perms.allows_model(group, model):
        raise PermissionDenied(f"this API key may not call model {model!r} of group {group!r}; "
                               "its allow-list is set by the environment's administrator")


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
        if isinstance(tools, (set, frozenset)):  # already checked once (a stored value being changed)
            tools = sorted(tools)
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


def may_use_service(perms: KeyPermissions, kind: KeyKind, service: str) -> bool:
    if perms.mcp is None:
        return may(kind, Right.MCP_WITHOUT_GRANT)
    return service in perms.mcp


def may_call_tool(perms: KeyPermissions, kind: KeyKind, service: str, tool: str) -> bool:
    """THE decision for an MCP tool: every tools/call, every tools/list entry and every agent's call asks here."""
    if perms.mcp is None:
        return may(kind, Right.MCP_WITHOUT_GRANT)
    granted = perms.mcp.get(service)
    return granted is not None and (granted == ALL_TOOLS or tool in granted)


def require_tool(perms: KeyPermissions, kind: KeyKind, service: str, tool: str) -> None:
    if not may_call_tool(perms, kind, service, tool):
        raise PermissionDenied(f"this API key may not call tool {ascii(tool)[1:-1][:128]} of MCP service {service}")
