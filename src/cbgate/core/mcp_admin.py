"""MCP service operations (create, list, show, update, delete), held by core.admin.Admin as `admin.mcp` so the
CLI and the admin API share them. A service's own headers go in encrypted and never come out."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable

import orjson

from cbgate.config import LiveSettings, Settings, live
from cbgate.core.permissions import SERVICE_NAME
from cbgate.core.secrets import SecretBox
from cbgate.errors import InvalidParam, InvalidPath
from cbgate.providers.netguard import EgressPolicy, EgressRefused
from cbgate.store import mcp as stored
from cbgate.store.db import StoreConflict
from cbgate.store.mcp import McpServiceRow
from cbgate.text import text_problem

TRANSPORTS = ("streamable-http", "sse")
HEADER_NAME = re.compile(r"\A[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}\Z")  # an RFC 9110 token
# set by the gateway itself on every upstream call: a service may not override them
RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "accept", "mcp-session-id",
                              "last-event-id", "connection", "transfer-encoding", "mcp-protocol-version"})
MAX_HEADERS = 20
MAX_TIMEOUT = 3600.0
DEFAULT_TIMEOUT = 60.0


class McpServiceNotFound(InvalidPath):
    """No such service in this environment (another environment's is just as absent: 404)."""


@dataclass(frozen=True, slots=True)
class McpServiceView:
    """What may be shown of a service: never its headers, only whether it has some."""
    name: str
    url: str
    transport: str
    timeout: float
    enabled: bool
    has_headers: bool
    created_at: float
    updated_at: float

    def as_dict(self) -> dict:
        return {"name": self.name, "url": self.url, "transport": self.transport, "timeout": self.timeout,
                "enabled": self.enabled, "has_headers": self.has_headers, "created_at": self.created_at,
                "updated_at": self.updated_at}


def parse_header_lines(lines: list[str]) -> dict[str, str]:
    """`Name: value` as curl takes them (the CLI's --header)."""
    found = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise InvalidParam(f"--header {ascii(line[:40])}... must be 'Name: value'")
        found[name.strip()] = value.strip()
    return found


def validate_headers(headers: object) -> dict[str, str]:
    if not isinstance(headers, dict) or len(headers) > MAX_HEADERS:
        raise InvalidParam(f"headers must be an object of at most {MAX_HEADERS} names and values")
    for name, value in headers.items():
        if not isinstance(name, str) or not HEADER_NAME.match(name) or name.lower() in RESERVED_HEADERS:
            raise InvalidParam(f"header name {ascii(name)[:80]} is not valid or is one the gateway sets itself")
        problem = text_problem(value, 4096)
        if problem or not value.isascii():  # a CR/LF would forge headers
            raise InvalidParam(f"the value of header {name} {problem or 'must be ASCII'}")
    return dict(headers)


def validate_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT:
        raise InvalidParam(f"timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}")
    return float(timeout)


class McpAdmin:
    def __init__(self, store, settings: Settings | LiveSettings, require_env: Callable[[str], None]):
        self.store = store
        self.live = live(settings)
        self.require_env = require_env
        self.policy = EgressPolicy.parse(self.settings.env_vars.get("CBGATE_UPSTREAM_ALLOW"))

    @property
    def settings(self) -> Settings:
        return self.live.current

    def validate_url(self, url: object) -> str:
        """The one egress policy, as at every connect: a literal non-public address is refused now."""
        if not isinstance(url, str):
            raise InvalidParam("url must be a string")
        try:
            target = self.policy.check_literal(url)
        except EgressRefused as exc:
            raise InvalidParam(f"url: {exc}") from None
        if target.url.fragment:
            raise InvalidParam("url may not carry a fragment")
        return url

    def create(self, env_id: str, name: str, url: str, transport: str = "streamable-http",
               headers: dict[str, str] | None = None, timeout: float | None = None) -> McpServiceView:
        self.require_env(env_id)
        if not isinstance(name, str) or not SERVICE_NAME.match(name):
            raise InvalidParam(f"service name {ascii(name)[:80]} must be 1-63 characters: lower-case letters, "
                               "digits and '-', starting with a letter")
        if transport not in TRANSPORTS:
            raise InvalidParam(f"transport must be {' or '.join(TRANSPORTS)}")
        url, timeout = self.validate_url(url), validate_timeout(timeout)
        sealed = self._seal(validate_headers(headers)) if headers else None
        now = time.time()
        row = McpServiceRow(env_id, name, url, transport, sealed, timeout, True, now, now)
        try:
            stored.insert_service(self.store, row)
        except StoreConflict:
            raise InvalidParam(f"MCP service {name!r} already exists in {env_id}") from None
        return view(row)

    def list(self, env_id: str) -> list[McpServiceView]:
        self.require_env(env_id)
        return [view(r) for r in stored.list_services(self.store, env_id)]

    def show(self, env_id: str, name: str) -> McpServiceView:
        return view(self._row(env_id, name))

    def update(self, env_id: str, name: str, *, url: str | None = None, transport: str | None = None,
               headers: dict[str, str] | None = None, timeout: float | None = None, reset_timeout: bool = False,
               enabled: bool | None = None) -> McpServiceView:
        """Change what is given, whole or not at all. `headers` replaces every header ({} removes them)."""
        self._row(env_id, name)
        values: dict = {}
        if url is not None:
            values["url"] = self.validate_url(url)
        if transport is not None:
            if transport not in TRANSPORTS:
                raise InvalidParam(f"transport must be {' or '.join(TRANSPORTS)}")
            values["transport"] = transport
        if headers is not None:
            values["headers"] = self._seal(validate_headers(headers)) if headers else None
        if timeout is not None or reset_timeout:
            values["timeout"] = validate_timeout(timeout)
        if enabled is not None:
            if not isinstance(enabled, bool):
                raise InvalidParam("enabled must be true or false")
            values["enabled"] = enabled
        if values:
            stored.update_service(self.store, env_id, name, **values)
        return self.show(env_id, name)

    def delete(self, env_id: str, name: str) -> None:
        self.require_env(env_id)
        if not stored.delete_service(self.store, env_id, name):
            raise McpServiceNotFound(f"MCP service {name!r} does not exist in {env_id}")

    def _row(self, env_id: str, name: str) -> McpServiceRow:
        self.require_env(env_id)
        found = next((r for r in stored.list_services(self.store, env_id) if r.name == name), None)
        if found is None:
            raise McpServiceNotFound(f"MCP service {name!r} does not exist in {env_id}")
        return found

    def _seal(self, headers: dict[str, str]) -> str:
        return SecretBox(self.settings).encrypt(orjson.dumps(headers).decode())


def view(row: McpServiceRow) -> McpServiceView:
    return McpServiceView(row.name, row.url, row.transport, row.timeout or DEFAULT_TIMEOUT, row.enabled,
                          bool(row.headers),
                          row.created_at, row.updated_at)


def open_headers(settings, row: McpServiceRow) -> dict[str, str]:
    """The service's own headers, for the call only (the gateway's data plane)."""
    if not row.headers:
        return {}
    return orjson.loads(SecretBox(settings).decrypt(row.headers))
