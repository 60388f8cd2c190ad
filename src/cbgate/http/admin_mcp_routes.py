"""The admin API's MCP routes (contributed to AdminRoutes): an environment's MCP services, and a key's
permissions (one value; each part given is replaced whole). A service's headers go in, never come out."""
from __future__ import annotations

from typing import Awaitable, Callable

from cbgate.core.admin import Admin
from cbgate.core.permissions import LIMIT_FIELDS, from_json
from cbgate.errors import InvalidParam

PERMISSION_PARTS = ("mcp", "models", *LIMIT_FIELDS)
EDITABLE = ("url", "transport", "headers", "timeout", "enabled")


def _text(body: dict, name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidParam(f"{name} must be a non-empty string")
    return value


def permissions_json(row) -> dict:
    """A key's permissions as the API shows them (`mcp`: null is the kind's default; `models`: null is every
    model of its environment; a limit: null is none of its own)."""
    permissions = from_json(row.permissions)
    return {"id": row.id, "mcp": permissions.mcp_view(), **permissions.model_view()}


class McpRoutes:
    def __init__(self, admin: Admin, run: Callable[..., Awaitable], require_unrestricted: Callable = lambda call: None):
        self.admin = admin
        self.run = run  # runs an admin operation off the event loop
        self.require_unrestricted = require_unrestricted  # a key with permissions of its own may not change any

    def routes(self) -> list[tuple]:
        """(method, path template under /admin/v1, handler, changes env-level state), as AdminRoutes keeps them."""
        return [
            ("GET", "/envs/{env}/mcp", self.list_services, False),
            ("POST", "/envs/{env}/mcp", self.create_service, True),
            ("GET", "/envs/{env}/mcp/{service}", self.show_service, False),
            ("PUT", "/envs/{env}/mcp/{service}", self.update_service, True),
            ("DELETE", "/envs/{env}/mcp/{service}", self.delete_service, True),
            ("GET", "/envs/{env}/keys/{key_id}/permissions", self.key_permissions, False),
            ("PUT", "/envs/{env}/keys/{key_id}/permissions", self.set_key_permissions, True),
        ]

    async def list_services(self, call):
        return 200, {"data": [v.as_dict() for v in await self.run(self.admin.mcp.list, call.params["env"])]}

    async def create_service(self, call):
        body = await call.body()
        view = await self.run(self.admin.mcp.create, call.params["env"], _text(body, "name"), _text(body, "url"),
                              body.get("transport") or "streamable-http", body.get("headers"), body.get("timeout"))
        return 201, view.as_dict()

    async def show_service(self, call):
        return 200, (await self.run(self.admin.mcp.show, call.params["env"], call.params["service"])).as_dict()

    async def update_service(self, call):
        body = await call.body()
        if not any(field in body for field in EDITABLE):
            raise InvalidParam(f"send at least one of {', '.join(EDITABLE)}")
        view = await self.run(
            self.admin.mcp.update, call.params["env"], call.params["service"],
            url=_text(body, "url") if "url" in body else None,
            transport=_text(body, "transport") if "transport" in body else None,
            headers=(body["headers"] or {}) if "headers" in body else None,  # null or {}: none any more
            timeout=body.get("timeout"), reset_timeout="timeout" in body and body["timeout"] is None,
            enabled=body.get("enabled"))
        return 200, view.as_dict()

    async def delete_service(self, call):
        await self.run(self.admin.mcp.delete, call.params["env"], call.params["service"])
        return 200, {"name": call.params["service"], "deleted": True}

    async def key_permissions(self, call):
        keys = await self.run(self.admin.list_keys, call.params["env"])
        row = next((k for k in keys if k.id == call.params["key_id"]), None)
        if row is None:
            raise InvalidParam(f"no key with id {call.params['key_id']!r} in environment {call.params['env']!r}")
        return 200, permissions_json(row)

    async def set_key_permissions(self, call):
        """Each part given (mcp, models, concurrency, rpm, token_quota) is replaced whole; the parts left out
        stay as they are, so changing the MCP list never lifts a model allow-list, nor the other way round."""
        self.require_unrestricted(call)
        body = await call.body()
        if not body or set(body) - set(PERMISSION_PARTS):
            raise InvalidParam("the body must be an object of some of " + ", ".join(PERMISSION_PARTS) +
                               ", e.g. {\"mcp\": {\"service\": [\"tool\", ...] | \"*\"} or null, "
                               "\"models\": [\"cloudbase/hunyuan-turbos\"] or null, \"rpm\": 60}")
        row = await self.run(self.admin.change_key_permissions, call.params["key_id"], body, call.params["env"])
        return 200, permissions_json(row)
