"""CORS for the chat API: browsers on the origins an environment allows may call it with that env's keys.

A preflight carries no key, so it is answered for an origin that the Host's environment allows (or, with a
Host naming none, that some environment allows); the real request is then checked against its key's own
environment, and a publishable key used from an origin its env does not list is refused outright.
"""
from __future__ import annotations

from cbgate.core.access import is_same_origin, origin_allowed
from cbgate.core.auth import env_from_host, presented_authorization, presented_key
from cbgate.core.key_kinds import KeyKind, Right, require
from cbgate.core.tenants import TenantDirectory
from cbgate.errors import PermissionDenied
from cbgate.http.exchange import Exchange

ALLOW_METHODS = b"GET, POST, OPTIONS"
ALLOW_HEADERS = b"authorization, content-type, accept"
EXPOSE_HEADERS = b"x-request-id, retry-after"
PREFLIGHT_MAX_AGE = b"600"


def _allow(origin: str) -> list[tuple[bytes, bytes]]:
    return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin"),
            (b"access-control-expose-headers", EXPOSE_HEADERS)]


def _with_headers(send, extra: list[tuple[bytes, bytes]]):
    async def send_with_cors(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": list(message["headers"]) + extra}
        await send(message)
    return send_with_cors


class CorsPolicy:
    def __init__(self, directory: TenantDirectory):
        self.directory = directory

    async def handle(self, ex: Exchange) -> bool:
        """Answer a preflight (True), or decorate the reply of a cross-origin request; requests without
        an Origin, and the console's own same-origin calls, pass untouched."""
        origin = ex.header(b"origin")
        if origin is None or is_same_origin(origin, ex.header(b"host")):
            return False
        if ex.scope["method"] == "OPTIONS":
            await self.preflight(ex, origin)
            return True
        extra = self.request_headers(ex, origin)
        if extra:
            ex.send = _with_headers(ex.send, extra)
        return False

    def _preflight_allowed(self, origin: str, host: str | None) -> bool:
        snapshot = self.directory.current()
        host_env = env_from_host(host)
        if host_env is not None:
            return origin_allowed(snapshot, host_env, origin)
        return any(origin.lower() in allowed for allowed in snapshot.origins.values())

    async def preflight(self, ex: Exchange, origin: str) -> None:
        if not self._preflight_allowed(origin, ex.header(b"host")):
            raise PermissionDenied(f"origin {origin} is not allowed to call this gateway")
        requested = ex.header(b"access-control-request-headers")
        headers = _allow(origin) + [
            (b"access-control-allow-methods", ALLOW_METHODS),
            (b"access-control-allow-headers", requested.encode("latin-1") if requested else ALLOW_HEADERS),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE)]
        await ex.reply(204, b"", headers)

    def request_headers(self, ex: Exchange, origin: str) -> list[tuple[bytes, bytes]]:
        snapshot = self.directory.current()
        row = presented_key(snapshot, presented_authorization(ex.header(b"authorization"), ex.header(b"x-api-key")))
        if row is None:  # authentication will refuse it; let an allowed page read why
            return _allow(origin) if self._preflight_allowed(origin, ex.header(b"host")) else []
        if origin_allowed(snapshot, row.env_id, origin):
            return _allow(origin)
        require(KeyKind.stored(row.kind), Right.ANY_ORIGIN, origin)
        return []  # a server key: its reply carries no origin headers, so the page cannot read it
