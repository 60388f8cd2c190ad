"""Who may use the admin API, and which browser origins may use an environment's keys.

An operator token sees every environment and the operator's own settings; a server API key manages its
own environment only; a publishable key may not use the admin API at all.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from cbgate.core.auth import authenticate, bearer_token
from cbgate.core.key_kinds import Right, require
from cbgate.core.keys import OPERATOR_PREFIX, SHOWN_PREFIX_LEN, key_digest, new_secret
from cbgate.core.tenants import TenantSnapshot
from cbgate.errors import InvalidAccessToken, InvalidParam, PermissionDenied
from cbgate.providers.netguard import InvalidUpstreamURL, parse_upstream_url
from cbgate.store.access import OperatorTokenRow

def new_operator_token(name: str = "") -> tuple[OperatorTokenRow, str]:
    """The stored row and the plain token, which is never stored and cannot be shown again."""
    plain = new_secret(OPERATOR_PREFIX)
    row = OperatorTokenRow(id="op-" + os.urandom(6).hex(), digest=key_digest(plain), prefix=plain[:SHOWN_PREFIX_LEN],
                           name=name, created_at=time.time(), revoked_at=None)
    return row, plain


@dataclass(frozen=True, slots=True)
class AdminPrincipal:
    operator: bool
    env_id: str | None  # the one environment a server key may manage; None for an operator
    token_id: str
    expires_at: float | None = None  # a server key's own expiry: keys it creates may not outlive it

    @property
    def kind(self) -> str:
        return "operator" if self.operator else "server"

    def require_env(self, env_id: str) -> None:
        if not self.operator and env_id != self.env_id:
            raise PermissionDenied("this API key may manage its own environment only")

    def require_operator(self) -> None:
        if not self.operator:
            raise PermissionDenied("only an operator token may do this")

    def visible_envs(self, all_envs: list[str]) -> list[str]:
        return all_envs if self.operator else [e for e in all_envs if e == self.env_id]


def authenticate_admin(snapshot: TenantSnapshot, authorization: str | None, host: str | None) -> AdminPrincipal:
    token = bearer_token(authorization)
    if token.startswith(OPERATOR_PREFIX):
        row = snapshot.operators.get(key_digest(token))  # found by digest: the whole digest matched
        if row is None:
            raise InvalidAccessToken("the operator token is not valid")
        return AdminPrincipal(True, None, row.id)
    principal = authenticate(snapshot, authorization, host)  # expiry, revocation and the Host's env
    require(principal.kind, Right.ADMIN_API)
    row = snapshot.keys.get(key_digest(token))
    return AdminPrincipal(False, principal.env_id, principal.key_id, row.expires_at if row else None)


MAX_ORIGINS = 100


def normalise_origins(origins: list[str]) -> list[str]:
    """`scheme://host[:port]` only, in the form a browser sends as Origin (lower case, IDNA host, no
    default port), deduplicated. Read by the same parser as upstream URLs: no markup, no CR/LF."""
    if len(origins) > MAX_ORIGINS:
        raise InvalidParam(f"an environment may allow at most {MAX_ORIGINS} origins")
    result = []
    for raw in origins:
        origin = raw.strip().rstrip("/")
        if not origin:
            continue
        why = "must look like https://app.example.com[:port], with no path"
        try:
            target = parse_upstream_url(origin)
        except InvalidUpstreamURL as exc:
            raise InvalidParam(f"origin {ascii(raw[:200])} {why} ({exc})") from None
        url = target.url
        if url.raw_path not in ("", "/") or url.raw_query_string or url.raw_fragment or len(origin) > 255:
            raise InvalidParam(f"origin {ascii(raw[:200])} {why}")
        host = f"[{target.host}]" if ":" in target.host else target.host
        port = f":{url.explicit_port}" if url.explicit_port not in (None, 80 if url.scheme == "http" else 443) else ""
        origin = f"{url.scheme}://{host}{port}"
        if origin not in result:
            result.append(origin)
    return sorted(result)


def is_same_origin(origin: str, host: str | None) -> bool:
    """The console calls the gateway from the gateway's own origin; that needs no allow list."""
    return bool(host) and urlsplit(origin).netloc == host.lower()


def origin_allowed(snapshot: TenantSnapshot, env_id: str, origin: str) -> bool:
    return origin.lower() in snapshot.origins.get(env_id, ())
