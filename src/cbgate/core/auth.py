"""Authentication: a Bearer key -> its environment, checked against the env the Host names."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from cbgate.core.permissions import DEFAULT, KeyPermissions
from cbgate.core.key_kinds import KeyKind
from cbgate.core.keys import key_digest
from cbgate.core.tenants import TenantSnapshot
from cbgate.protocol.surface import presented_authorization  # noqa: F401  (read through core.auth too)
from cbgate.store.envs import KeyRow
from cbgate.errors import AccessTokenExpired, InvalidAccessToken, InvalidEnv, MissingCredentials, PermissionDenied

HOST_ENV = re.compile(r"\A([A-Za-z0-9][A-Za-z0-9-]*)\.api\.", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Principal:
    env_id: str
    key_id: str
    kind: KeyKind
    permissions: KeyPermissions = DEFAULT  # the key's allow-lists and own limits, evaluated at dispatch


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise MissingCredentials("missing Authorization header; send `Authorization: Bearer <API_KEY>`")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise MissingCredentials("the Authorization header must be `Bearer <API_KEY>`")
    return token


def env_from_host(host: str | None) -> str | None:
    """`<ENV_ID>.api.<anything>` names the environment; any other Host names none. Host names are
    case-insensitive (`Team-A.API.example` is team-a), so an upper-case label never skips the check."""
    if not host:
        return None
    match = HOST_ENV.match(host)
    return match.group(1).lower() if match else None


def presented_key(snapshot: TenantSnapshot, authorization: str | None) -> KeyRow | None:
    """The live key an Authorization header carries, or None; never an error (for CORS, which decides
    before authentication does)."""
    try:
        return snapshot.keys.get(key_digest(bearer_token(authorization)))
    except MissingCredentials:
        return None


def authenticate(snapshot: TenantSnapshot, authorization: str | None, host: str | None) -> Principal:
    # The lookup is by SHA-256 digest: finding the row already compared the whole digest.
    row = snapshot.keys.get(key_digest(bearer_token(authorization)))
    if row is None:
        raise InvalidAccessToken("the API key is not valid")
    if row.expires_at is not None and row.expires_at <= time.time():
        raise AccessTokenExpired("the API key has expired")
    host_env = env_from_host(host)
    if host_env is not None and host_env != row.env_id:
        if host_env not in snapshot.envs:
            raise InvalidEnv(f"unknown environment {host_env}")
        raise PermissionDenied("the API key does not belong to this environment")
    return Principal(row.env_id, row.id, KeyKind.stored(row.kind), snapshot.permissions.get(row.id, DEFAULT))
