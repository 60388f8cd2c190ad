"""The admin API's model-group routes (their own routes, contributed to AdminRoutes): list with switches,
create a custom group, change or test one, delete it, and switch one model. Secrets go in, never come out."""
from __future__ import annotations

from typing import Awaitable, Callable

from cbgate.core.admin import Admin
from cbgate.core.group_admin import INPUT_FIELDS, GroupChange, GroupView, UpstreamCheckFailed
from cbgate.errors import InvalidParam, ModelGroupNotFound
from cbgate.store.groups import GroupKind

API_SKIP_HINT = None  # the console words its own hint beside the form; the API documents "check"
EDITABLE = ("enabled", "api_key", "base_url", "models", "timeouts", *INPUT_FIELDS)


def group_json(view: GroupView) -> dict:
    """A group as the API shows it: `has_key` says whether a secret is set, never what it is."""
    body = {"name": view.name, "type": "custom" if view.kind == GroupKind.CUSTOM else "builtin",
            "protocol": view.protocol, "base_url": view.base_url, "enabled": view.enabled, "has_key": view.has_key,
            "models": [{"name": m, "enabled": on} for m, on in view.switches]}
    if view.kind != GroupKind.CATALOG:  # the catalog's deployments declare theirs in the config file
        body["timeouts"] = view.timeouts
        body.update({field: getattr(view.inputs, field) for field in INPUT_FIELDS})
    return body


def _inputs(body: dict) -> dict | None:
    """The declarations a body makes (true, false, or null: no longer declared; checked by the group admin);
    None when it makes none."""
    return {field: body[field] for field in INPUT_FIELDS if field in body} or None


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
    def __init__(self, admin: Admin, run: Callable[..., Awaitable]):
        self.admin = admin
        self.run = run  # runs an admin operation off the event loop

    def routes(self) -> list[tuple]:
        """(method, path template under /admin/v1, handler, changes env-level state), as AdminRoutes keeps them."""
        return [
            ("GET", "/envs/{env}/groups", self.list_groups, False),
            ("POST", "/envs/{env}/groups", self.create_group, True),
            ("PUT", "/envs/{env}/groups/{group}", self.change_group, True),
            ("DELETE", "/envs/{env}/groups/{group}", self.delete_group, True),
            ("POST", "/envs/{env}/groups/{group}/test", self.probe_group, False),
            ("PUT", "/envs/{env}/groups/{group}/models/{model}", self.switch_model, True),
        ]

    async def _listing(self, env_id: str) -> list[dict]:
        return [group_json(view) for view in await self.run(self.admin.groups.list_groups, env_id)]

    async def _one(self, env_id: str, name: str) -> dict:
        """The group as listed after a change (gone: another request deleted it meanwhile)."""
        found = next((g for g in await self._listing(env_id) if g["name"] == name), None)
        if found is None:
            raise ModelGroupNotFound(f"model group {name!r} does not exist in {env_id}")
        return found

    async def list_groups(self, call):
        return 200, {"data": await self._listing(call.params["env"])}

    async def create_group(self, call):
        body = await call.body()
        models, timeouts = _models(body), _timeouts(body)
        check = body.get("check", True)
        if not isinstance(check, bool):
            raise InvalidParam("check must be true or false")
        # Through the API the URL is checked under the egress policy: calls to it will be, too.
        view = await self.run(self.admin.groups.create_group, call.params["env"], _string(body, "name"),
                              _string(body, "base_url"), models, api_key=_string(body, "api_key", False),
                              protocol=body.get("protocol") or "openai", check=check,
                              timeouts=timeouts, inputs=_inputs(body), skip_hint=API_SKIP_HINT)
        return 201, await self._one(call.params["env"], view.name)

    async def change_group(self, call):
        body = await call.body()
        env, name = call.params["env"], call.params["group"]
        if not any(field in body for field in EDITABLE):
            raise InvalidParam(f"send at least one of {', '.join(EDITABLE)}")
        if "enabled" in body and not isinstance(body["enabled"], bool):
            raise InvalidParam("enabled must be true or false")
        change = GroupChange(
            enabled=body.get("enabled"),
            api_key=_string(body, "api_key") if "api_key" in body else None,
            base_url=_string(body, "base_url") if "base_url" in body else None,
            models=_models(body) if "models" in body else None,
            timeouts=_timeouts(body) or None,
            reset_timeouts="timeouts" in body and not body["timeouts"],  # null or {}: back to the defaults
            inputs=_inputs(body))
        await self.run(self.admin.groups.change_group, env, name, change)
        return 200, await self._one(env, name)

    async def probe_group(self, call):
        """The console's "test" button: does the saved group answer with its saved key, under the egress
        policy? A failed test is a result, not an error of this call."""
        try:
            seconds = await self.run(self.admin.groups.probe_group, call.params["env"], call.params["group"])
        except UpstreamCheckFailed as exc:
            return 200, {"ok": False, "code": exc.code, "message": exc.message}
        return 200, {"ok": True, "latency_ms": round(seconds * 1000, 1)}

    async def delete_group(self, call):
        await self.run(self.admin.groups.delete_group, call.params["env"], call.params["group"])
        return 200, {"name": call.params["group"], "deleted": True}

    async def switch_model(self, call):
        body = await call.body()
        if not isinstance(body.get("enabled"), bool):
            raise InvalidParam("the body must be {\"enabled\": true|false}")
        p = call.params
        await self.run(self.admin.set_model, p["env"], p["group"], p["model"], body["enabled"])
        return 200, {"group": p["group"], "name": p["model"], "enabled": body["enabled"]}
