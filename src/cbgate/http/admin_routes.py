"""`/admin/v1/...`: the admin API (JSON). Every action is one call into core.admin.Admin, the same
operations the CLI runs, so the CLI, this API and the console always agree. Described by
`admin_openapi.py`, served at `/admin/v1/openapi.json`."""
from __future__ import annotations

import asyncio
import math
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import parse_qs, unquote

from cbgate.core.access import AdminPrincipal, authenticate_admin
from cbgate.core.admin import Admin
from cbgate.core.key_kinds import KeyKind
from cbgate.core.tenants import TenantDirectory
from cbgate.errors import InvalidParam, InvalidPath, MethodNotAllowed, PermissionDenied
from cbgate.http.admin_agent_routes import AgentRoutes
from cbgate.http.admin_budget_routes import BudgetRoutes, Live
from cbgate.core.permissions import KeyPermissions, from_json, mcp_grants
from cbgate.http.admin_group_routes import GroupRoutes
from cbgate.http.admin_mcp_routes import McpRoutes
from cbgate.http.admin_openapi import openapi_document
from cbgate.http.admin_price_routes import PriceRoutes
from cbgate.http.exchange import Exchange

PREFIX = ("admin", "v1")
MAX_ADMIN_BODY = 64 * 1024
BUSIEST_WINDOW_S = 30 * 86400


@dataclass
class Call:
    ex: Exchange
    principal: AdminPrincipal
    params: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)

    async def body(self) -> dict:
        """The JSON object sent; an empty body counts as `{}` (POST /envs needs no fields)."""
        if self.ex.header(b"content-length") == "0":
            return {}
        return await self.ex.read_json_object(MAX_ADMIN_BODY)

    def number(self, name: str, default: float | None = None) -> float | None:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InvalidParam(f"query parameter {name!r} must be a number")
        return value


LAST_SHOWABLE_TIME = 253402300799.0  # 9999-12-31T23:59:59Z: the last second a browser's Date can show


def key_view(row) -> dict:
    """A key as listings show it: never its digest, and the plain key only once, at creation. An expiry
    stored past year 9999 (before expiry was bounded) reads as none, which is what it means."""
    view = asdict(row)
    view.pop("digest", None)
    if "permissions" in view:  # a key's, shown as its allow-lists (null: the kind's defaults) and own limits
        permissions = from_json(view.pop("permissions"))
        view.update(mcp=permissions.mcp_view(), **permissions.model_view())
    if view.get("expires_at") is not None and view["expires_at"] > LAST_SHOWABLE_TIME:
        view["expires_at"] = None
    return view


MAX_DAYS = 36500


def _since(call: Call) -> float | None:
    days = call.number("days")
    if days is not None:
        if not 0 < days <= MAX_DAYS:
            raise InvalidParam(f"days must be above 0 and at most {MAX_DAYS}")
        return time.time() - days * 86400
    since = call.number("since")
    if since is not None and not 0 <= since <= 1e11:
        raise InvalidParam("since must be a time in epoch seconds")
    return since


def _window(call: Call) -> dict:
    """The rest of a usage query's scope: `until` (epoch seconds, exclusive) and `key` (one key's id)."""
    until = call.number("until")
    if until is not None and not 0 <= until <= 1e11:
        raise InvalidParam("until must be a time in epoch seconds")
    key_id = call.query.get("key") or None
    if key_id is not None and len(key_id) > 128:
        raise InvalidParam("key must be a key's id")
    return {"until": until, "key_id": key_id}


class AdminRoutes:
    def __init__(self, admin: Admin, directory: TenantDirectory, budgets_live: Live | None = None):
        self.admin = admin
        self.directory = directory
        self.openapi = openapi_document()
        self.groups = GroupRoutes(admin, self.run)
        self.mcp = McpRoutes(admin, self.run, self.require_unrestricted)
        self.agents = AgentRoutes(admin, self.run)
        # (method, path template under /admin/v1, handler, changes env-level state)
        self.routes = [
            ("GET", "/me", self.me, False),
            ("GET", "/envs", self.list_envs, False),
            ("POST", "/envs", self.create_env, True),
            ("GET", "/envs/{env}", self.get_env, False),
            ("PUT", "/envs/{env}/origins", self.set_origins, True),
            ("GET", "/envs/{env}/keys", self.list_keys, False),
            ("POST", "/envs/{env}/keys", self.create_key, True),
            ("DELETE", "/envs/{env}/keys/{key_id}", self.revoke_key, True),
            *self.groups.routes(),
            *self.mcp.routes(),
            *self.agents.routes(),
            *PriceRoutes(admin, self.run).routes(),
            *BudgetRoutes(admin, self.run, budgets_live).routes(),
            ("GET", "/envs/{env}/limits", self.limits, False),
            ("PUT", "/envs/{env}/limits", self.set_limits, True),
            ("GET", "/envs/{env}/usage", self.usage, False),
            ("GET", "/envs/{env}/usage/series", self.usage_series, False),
            ("GET", "/envs/{env}/requests", self.recent_requests, False),
            ("GET", "/operator/tokens", self.list_operator_tokens, False),
            ("POST", "/operator/tokens", self.create_operator_token, True),
            ("DELETE", "/operator/tokens/{token_id}", self.revoke_operator_token, True),
        ]

    def route_templates(self) -> list[tuple[str, str]]:
        return [(method, "/admin/v1" + path) for method, path, _, _ in self.routes] + \
            [("GET", "/admin/v1/openapi.json")]

    async def handle(self, ex: Exchange) -> None:
        raw = ex.scope.get("raw_path") or ex.scope["path"].encode()
        segments = tuple(unquote(s) for s in raw.decode("latin-1").split("?", 1)[0].strip("/").split("/"))[2:]
        method = ex.scope["method"]
        if segments == ("openapi.json",):
            if method != "GET":
                raise MethodNotAllowed(method, ("GET",))
            return await ex.reply_json(self.openapi)
        matches = [(m, handler, changes, params) for m, path, handler, changes in self.routes
                   if (params := _match(path, segments)) is not None]
        if not matches:
            raise InvalidPath(f"no such path: {ex.scope['path']}")
        chosen = next((m for m in matches if m[0] == method), None)
        if chosen is None:
            raise MethodNotAllowed(method, sorted({m[0] for m in matches}))
        _, handler, changes, params = chosen
        principal = authenticate_admin(self.directory.current(), ex.header(b"authorization"), ex.header(b"host"))
        if not principal.operator:
            self.directory.note_key_used(principal.token_id)
        if "env" in params:
            principal.require_env(params["env"])
        query = {k: v[-1] for k, v in parse_qs(ex.scope.get("query_string", b"").decode("latin-1")).items()}
        status, result = await handler(Call(ex, principal, params, query))
        if changes:
            await self.directory.refresh()  # this replica sees its own change at once
        await ex.reply_json(result, status)

    @staticmethod
    async def run(fn, *args, **kwargs):
        """Admin operations query the database: off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    # Who am I (the console's sign-in), and which of my environments had the most traffic lately (the
    # console opens that one, not the alphabetically first).
    async def me(self, call: Call):
        envs = call.principal.visible_envs([e for e, _ in await self.run(self.admin.list_envs)])
        busiest = await self.run(self.admin.busiest_env, envs, time.time() - BUSIEST_WINDOW_S) if envs else None
        return 200, {"kind": call.principal.kind, "env": call.principal.env_id, "envs": envs, "busiest": busiest}

    # Environments.
    async def list_envs(self, call: Call):
        envs = await self.run(self.admin.list_envs)
        visible = set(call.principal.visible_envs([e for e, _ in envs]))
        return 200, {"data": [{"id": e, "created_at": created} for e, created in envs if e in visible]}

    async def create_env(self, call: Call):
        call.principal.require_operator()
        body = await call.body()
        if body.get("id") is not None and not isinstance(body["id"], str):
            raise InvalidParam("id must be a string")
        env_id = await self.run(self.admin.create_env, body.get("id"))
        return 201, {"id": env_id}

    async def get_env(self, call: Call):
        env_id = call.params["env"]
        created = dict(await self.run(self.admin.list_envs)).get(env_id)
        origins = await self.run(self.admin.env_origins, env_id)  # refuses an unknown env
        return 200, {"id": env_id, "created_at": created, "origins": origins}

    async def set_origins(self, call: Call):
        origins = (await call.body()).get("origins")
        if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
            raise InvalidParam("the body must be {\"origins\": [\"https://app.example.com\", ...]}")
        saved = await self.run(self.admin.set_env_origins, call.params["env"], origins)
        return 200, {"id": call.params["env"], "origins": saved}

    # API keys.
    async def list_keys(self, call: Call):
        rows = await self.run(self.admin.list_keys, call.params["env"])
        return 200, {"data": [key_view(r) for r in rows]}

    def require_unrestricted(self, call: Call) -> None:
        """An operator, or a server key with no permissions of its own: a key an allow-list or a limit holds
        may neither create keys nor change keys' permissions, either of which would lift it."""
        if not call.principal.operator and call.principal.token_id in self.directory.snapshot.permissions:
            raise PermissionDenied("this API key has permissions of its own (allow-lists or limits), so it may not "
                                   "create keys or change keys' permissions; ask the environment's administrator")

    async def create_key(self, call: Call):
        self.require_unrestricted(call)
        body = await call.body()
        kind = KeyKind.parse(body.get("kind", KeyKind.SERVER))
        name, days = body.get("name") or "", body.get("expires_days")
        if not isinstance(name, str) or len(name) > 128:
            raise InvalidParam("name must be a string of at most 128 characters")
        if days is not None and (isinstance(days, bool) or not isinstance(days, (int, float))):
            raise InvalidParam("expires_days must be a number")
        grants = mcp_grants(body.get("mcp"))
        row, plain = await self.run(self.admin.create_key, call.params["env"], kind, days, name,
                                    call.principal.expires_at,
                                    KeyPermissions(mcp=grants) if grants is not None else None)
        return 201, {**key_view(row), "key": plain}

    async def revoke_key(self, call: Call):
        await self.run(self.admin.revoke_key, call.params["key_id"], call.params["env"])
        return 200, {"id": call.params["key_id"], "revoked": True}

    # Admission limits: the env sees its own; raising them is the operator's call (they guard the
    # operator's capacity and quota), so only an operator token may change them.
    async def limits(self, call: Call):
        return 200, await self.run(self.admin.env_limits, call.params["env"])

    async def set_limits(self, call: Call):
        call.principal.require_operator()
        body = await call.body()
        return 200, await self.run(self.admin.set_env_limits, call.params["env"], body)

    # Usage, from the ledger.
    async def usage(self, call: Call):
        by = call.query.get("by") or None
        return 200, await self.run(self.admin.usage_summary, call.params["env"], _since(call), by, **_window(call))

    async def usage_series(self, call: Call):
        rows = await self.run(self.admin.usage_series, call.params["env"], _since(call), **_window(call))
        return 200, {"env": call.params["env"], "data": rows}

    async def recent_requests(self, call: Call):
        limit = int(max(1, min(call.number("limit", 50), 1000)))
        records = await self.run(self.admin.recent_requests, call.params["env"], limit)
        # Message contents are in a record only when the operator turned content logging on
        # (CBGATE_LOG_CONTENT); this view is the env's own, so they reach no one else.
        return 200, {"data": [r.as_dict() for r in records]}

    # Operator settings.
    async def list_operator_tokens(self, call: Call):
        call.principal.require_operator()
        rows = await self.run(self.admin.list_operator_tokens)
        return 200, {"data": [key_view(r) for r in rows]}

    async def create_operator_token(self, call: Call):
        call.principal.require_operator()
        name = (await call.body()).get("name") or ""
        if not isinstance(name, str) or len(name) > 128:
            raise InvalidParam("name must be a string of at most 128 characters")
        row, plain = await self.run(self.admin.create_operator_token, name)
        return 201, {**key_view(row), "token": plain}

    async def revoke_operator_token(self, call: Call):
        call.principal.require_operator()
        await self.run(self.admin.revoke_operator_token, call.params["token_id"])
        return 200, {"id": call.params["token_id"], "revoked": True}


def _match(template: str, segments: tuple[str, ...]) -> dict[str, str] | None:
    parts = template.strip("/").split("/")
    if len(parts) != len(segments):
        return None
    params = {}
    for part, segment in zip(parts, segments):
        if part.startswith("{"):
            if not segment:
                return None
            params[part[1:-1]] = segment
        elif part != segment:
            return None
    return params
