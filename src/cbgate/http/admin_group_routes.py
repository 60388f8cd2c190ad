"""The admin API's model-group handlers (mixed into AdminRoutes): list with switches, create a custom group,
switch a group or set its key, delete it, and switch one model. Secrets go in, never come out."""
from __future__ import annotations

from cbgate.core.admin import Admin
from cbgate.core.group_admin import UpstreamCheckFailed
from cbgate.core.resolve import CATALOG_GROUP
from cbgate.errors import InvalidParam

API_SKIP_HINT = None  # the console words its own hint beside the form; the API documents "check"
EDITABLE = ("enabled", "api_key", "base_url", "models", "timeouts")


def group_listing(admin: Admin, env_id: str) -> list[dict]:
    """The catalog group, then the built-in vendor groups and the env's custom groups, each with its
    models and their switches. `has_key` says whether a secret is set, never what it is."""
    catalog = [{"name": m, "enabled": bool(on)} for _, m, on in admin.list_models(env_id, CATALOG_GROUP)]
    groups = [{"name": CATALOG_GROUP, "type": "builtin", "protocol": "catalog", "base_url": None, "enabled": True,
               "has_key": True, "models": catalog}]
    for g in admin.list_groups(env_id):
        groups.append({"name": g.name, "type": "custom" if g.kind == "custom" else "builtin",
                       "protocol": g.protocol, "base_url": g.base_url, "enabled": g.enabled, "has_key": g.has_key,
                       "timeouts": g.timeouts,
                       "models": [{"name": m, "enabled": on} for m, on in admin.group_models(env_id, g.name)]})
    return groups


def _models(body: dict) -> list[str]:
    models = body.get("models")
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise InvalidParam("models must be a list of model names")
    return models


def _timeouts(body: dict) -> dict | None:
    timeouts = body.get("timeouts")
    if timeouts is not None and not isinstance(timeouts, dict):
        raise InvalidParam("timeouts must be an object of seconds, e.g. {\"connect\": 5, \"total\": 60}")
    return timeouts


def _string(body: dict, name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidParam(f"{name} must be a non-empty string")
    return value


class GroupRoutes:
    """Needs `self.admin`, `self.run` (AdminRoutes)."""

    async def list_groups(self, call):
        return 200, {"data": await self.run(group_listing, self.admin, call.params["env"])}

    async def create_group(self, call):
        body = await call.body()
        models, timeouts = _models(body), _timeouts(body)
        check = body.get("check", True)
        if not isinstance(check, bool):
            raise InvalidParam("check must be true or false")
        # Through the API the URL is checked under the egress policy: calls to it will be, too.
        view = await self.run(self.admin.create_group, call.params["env"], _string(body, "name"),
                              _string(body, "base_url"), models, api_key=_string(body, "api_key", False),
                              protocol=body.get("protocol") or "openai", check=check,
                              timeouts=timeouts, skip_hint=API_SKIP_HINT)
        return 201, next(g for g in await self.run(group_listing, self.admin, call.params["env"])
                         if g["name"] == view.name)

    async def change_group(self, call):
        body = await call.body()
        env, name = call.params["env"], call.params["group"]
        if not any(field in body for field in EDITABLE):
            raise InvalidParam(f"send at least one of {', '.join(EDITABLE)}")
        if name == CATALOG_GROUP:
            raise InvalidParam(f"{CATALOG_GROUP!r} is the operator's catalog: switch its models one by one")
        if "base_url" in body or "models" in body:
            await self.run(self.admin.edit_custom_group, env, name,
                           base_url=_string(body, "base_url") if "base_url" in body else None,
                           models=_models(body) if "models" in body else None)
        if "timeouts" in body:  # null or {}: back to the defaults
            await self.run(self.admin.set_group_timeouts, env, name, _timeouts(body))
        if "api_key" in body:
            await self.run(self.admin.set_group_key, env, name, _string(body, "api_key"))
        if "enabled" in body:
            if not isinstance(body["enabled"], bool):
                raise InvalidParam("enabled must be true or false")
            await self.run(self.admin.set_group_enabled, env, name, body["enabled"])
        return 200, next(g for g in await self.run(group_listing, self.admin, env) if g["name"] == name)

    async def probe_group(self, call):
        """The console's "test" button: does the saved group answer with its saved key, under the egress
        policy? A failed test is a result, not an error of this call."""
        try:
            seconds = await self.run(self.admin.probe_group, call.params["env"], call.params["group"])
        except UpstreamCheckFailed as exc:
            return 200, {"ok": False, "code": exc.code, "message": exc.message}
        return 200, {"ok": True, "latency_ms": round(seconds * 1000, 1)}

    async def delete_group(self, call):
        await self.run(self.admin.delete_group, call.params["env"], call.params["group"])
        return 200, {"name": call.params["group"], "deleted": True}

    async def switch_model(self, call):
        body = await call.body()
        if not isinstance(body.get("enabled"), bool):
            raise InvalidParam("the body must be {\"enabled\": true|false}")
        p = call.params
        await self.run(self.admin.set_model, p["env"], p["group"], p["model"], body["enabled"])
        return 200, {"group": p["group"], "name": p["model"], "enabled": body["enabled"]}
