"""Operations on env-level state, shared by the CLI and the admin API so both always agree."""
from __future__ import annotations

import os
import re
import string
import time

from cbgate.config import LiveSettings, Settings, live
from cbgate.core.access import new_operator_token, normalise_origins
from cbgate.core.agent_admin import AgentAdmin
from cbgate.core.budget_admin import BudgetAdmin
from cbgate.core.group_admin import GroupAdmin
from cbgate.core.key_kinds import KeyKind
from cbgate.core.prices import PriceAdmin
from cbgate.core.keys import SHOWN_PREFIX_LEN, generate_key, key_digest, new_key_id
from cbgate.core.mcp_admin import McpAdmin
from cbgate.core.permissions import KeyPermissions, changed, from_json
from cbgate.core.resolve import CATALOG_GROUP
from cbgate.errors import InvalidEnv, InvalidParam, ModelNotSupported
from cbgate.limits.base import FIELDS as LIMIT_FIELDS
from cbgate.limits.base import OFF, resolve_limits
from cbgate.limits.values import limit_value
from cbgate.store import access, usage
from cbgate.store import envs as stored_envs
from cbgate.store import limits as stored_limits
from cbgate.store.access import OperatorTokenRow
from cbgate.store.db import Store, StoreConflict
from cbgate.store.envs import KeyRow
from cbgate.text import text_problem

ENV_ID = re.compile(r"\A[a-z][a-z0-9-]{2,47}\Z")
MAX_KEY_DAYS = 36500  # a hundred years: any longer is "never", which is what leaving it out says
MAX_NAME = 128
_ALPHABET = string.ascii_lowercase + string.digits


def check_name(name: object, what: str) -> None:
    """A display name (keys, tokens): any language, but nothing that could drive a terminal or a store."""
    problem = text_problem(name, MAX_NAME)
    if problem:
        raise InvalidParam(f"{what} {problem}")


def new_env_id() -> str:
    return "env-" + "".join(_ALPHABET[b % len(_ALPHABET)] for b in os.urandom(8))


class Admin:
    def __init__(self, store: Store, settings: Settings | LiveSettings):
        self.store = store
        self.live = live(settings)  # one holder for the admin and its parts: a reload reaches them all
        self.groups = GroupAdmin(store, self.live, self.require_env)  # model groups: `admin.groups.create_group(...)`
        self.mcp = McpAdmin(store, self.live, self.require_env)  # MCP services: `admin.mcp.create(...)`
        self.agents = AgentAdmin(store, self.live.current, self.require_env, self.list_models)  # `admin.agents.create(...)`
        self.prices = PriceAdmin(store, lambda: self.settings, self.list_models)  # `admin.prices.set_price(...)`
        self.budgets = BudgetAdmin(store, self.require_env)  # `admin.budgets.set_budget(...)`

    @property
    def settings(self) -> Settings:
        return self.live.current

    def create_env(self, env_id: str | None = None) -> str:
        env_id = env_id or new_env_id()
        if not isinstance(env_id, str) or not ENV_ID.match(env_id):
            raise InvalidParam(
                f"environment id {ascii(env_id)} must be 3-48 characters: lower-case letters, digits and '-', "
                "starting with a letter")
        try:
            stored_envs.create_env(self.store, env_id, {CATALOG_GROUP: self.settings.default_models})
        except StoreConflict as exc:
            raise InvalidParam(str(exc)) from None
        return env_id

    def list_envs(self) -> list[tuple[str, float]]:
        return stored_envs.list_envs(self.store)

    def require_env(self, env_id: str) -> None:
        if not stored_envs.env_exists(self.store, env_id):
            raise InvalidEnv(f"environment {env_id!r} does not exist")

    def create_key(self, env_id: str, kind: KeyKind | str = KeyKind.SERVER, expires_days: float | None = None,
                   name: str = "", not_after: float | None = None,
                   permissions: KeyPermissions | None = None) -> tuple[KeyRow, str]:
        """Return the stored row and the plain key, which is never stored and cannot be shown again.
        `not_after`: the expiry of the key asking for this one, which the new key may not outlive
        (without `expires_days` it expires with it). `permissions`: its allow-lists (None: the kind's defaults)."""
        self.require_env(env_id)
        kind = KeyKind.parse(kind)
        check_name(name, "key name")
        if expires_days is not None and (isinstance(expires_days, bool) or not isinstance(expires_days, (int, float))
                                         or not 0 < expires_days <= MAX_KEY_DAYS):
            raise InvalidParam(f"expiry must be a positive number of days, at most {MAX_KEY_DAYS}")
        now = time.time()
        expires_at = now + expires_days * 86400 if expires_days is not None else None
        if not_after is not None:
            if expires_at is not None and expires_at > not_after:
                raise InvalidParam("a key may not outlive the key that creates it: ask for fewer expires_days")
            expires_at = not_after if expires_at is None else expires_at
        plain = generate_key(kind)
        row = KeyRow(id=new_key_id(), env_id=env_id, digest=key_digest(plain), prefix=plain[:SHOWN_PREFIX_LEN],
                     kind=kind, name=name, created_at=now, expires_at=expires_at, revoked_at=None,
                     last_used_at=None, permissions=permissions.to_json() if permissions else None)
        stored_envs.insert_key(self.store, row)
        return row, plain

    def list_keys(self, env_id: str) -> list[KeyRow]:
        self.require_env(env_id)
        return stored_envs.list_keys(self.store, env_id)

    def revoke_key(self, key_id: str, env_id: str | None = None) -> bool:
        """True when this call revoked the key, False when it already was (revoking twice is no error).
        With `env_id`, only a key of that environment (the admin API scopes every call to one env)."""
        keys = self.list_keys(env_id) if env_id is not None else stored_envs.list_keys(self.store)
        known = {k.id for k in keys}
        if key_id not in known:
            where = f" in environment {env_id!r}" if env_id is not None else ""
            raise InvalidParam(f"no key with id {key_id!r}{where}")
        return stored_envs.revoke_key(self.store, key_id)

    def set_key_permissions(self, key_id: str, permissions: KeyPermissions, env_id: str | None = None) -> KeyRow:
        """Replace the key's permissions whole: whatever the new value leaves out is revoked. With `env_id`,
        only a key of that environment (the admin API scopes every call to one env)."""
        keys = self.list_keys(env_id) if env_id is not None else stored_envs.list_keys(self.store)
        row = next((k for k in keys if k.id == key_id), None)
        if row is None:
            where = f" in environment {env_id!r}" if env_id is not None else ""
            raise InvalidParam(f"no key with id {key_id!r}{where}")
        stored_envs.set_key_permissions(self.store, row.env_id, key_id, permissions.to_json())
        return next(k for k in stored_envs.list_keys(self.store, row.env_id) if k.id == key_id)

    def change_key_permissions(self, key_id: str, changes: dict, env_id: str | None = None) -> KeyRow:
        """Replace the parts of the key's permissions given (`mcp`, `models`, `concurrency`, `rpm`,
        `token_quota`, each whole); the others stay, so one part never lifts another."""
        keys = self.list_keys(env_id) if env_id is not None else stored_envs.list_keys(self.store)
        row = next((k for k in keys if k.id == key_id), None)
        if row is None:
            where = f" in environment {env_id!r}" if env_id is not None else ""
            raise InvalidParam(f"no key with id {key_id!r}{where}")
        return self.set_key_permissions(key_id, changed(from_json(row.permissions), changes), row.env_id)

    def list_models(self, env_id: str, group: str | None = None) -> list[tuple[str, str, bool]]:
        """(group, model, enabled) for every model the env could call."""
        self.require_env(env_id)
        if group not in (None, CATALOG_GROUP):
            return [(group, m, on) for m, on in self.groups.group_models(env_id, group)]
        switches = {(g, m): on for _, g, m, on in stored_envs.model_switches(self.store, env_id)}
        found = [(CATALOG_GROUP, m.name, switches.get((CATALOG_GROUP, m.name), False))
                 for m in self.settings.catalog]
        if group is None:  # every group the env can call: the catalog, vendor groups with its key, custom groups
            for name in self.groups.configured_group_names(env_id):
                found += [(name, m, on) for m, on in self.groups.group_models(env_id, name)]
        return found

    def set_model(self, env_id: str, group: str, model: str, enabled: bool) -> None:
        self.require_env(env_id)
        if group != CATALOG_GROUP:
            if model not in {m for m, _ in self.groups.group_models(env_id, group)}:
                raise ModelNotSupported(f"model {model!r} is not in group {group!r}")
        elif self.settings.catalog_model(model) is None:
            raise ModelNotSupported(f"model {model!r} is not in group {group!r}")
        stored_envs.set_model_switch(self.store, env_id, group, model, enabled)

    # Usage (the ledger): the CLI's `cbgate usage` and the admin API's usage views and charts.
    def usage_summary(self, env_id: str, since: float | None = None, by: str | None = None, *,
                      until: float | None = None, key_id: str | None = None) -> dict:
        """Totals (with `total_tokens`) and, when `by` is model|key|day, one row per value; from `since` to
        `until` (epoch seconds), of one key when `key_id` is given ("what did key X cost this month")."""
        self.require_env(env_id)
        if by not in (None, *usage.GROUPINGS):
            raise InvalidParam(f"usage can be grouped by {', '.join(usage.GROUPINGS)}, not {by!r}")
        return usage.usage_summary(self.store, env_id, since, by, until=until, key_id=key_id)

    def usage_series(self, env_id: str, since: float | None = None, *, until: float | None = None,
                     key_id: str | None = None) -> list[dict]:
        """Requests and tokens per day and model, oldest first."""
        self.require_env(env_id)
        return usage.usage_series(self.store, env_id, since, until=until, key_id=key_id)

    def busiest_env(self, env_ids: list[str], since: float) -> str | None:
        """The environment among `env_ids` with the most requests since then; None without traffic."""
        return usage.busiest_env(self.store, env_ids, since)

    def recent_requests(self, env_id: str, limit: int = 50) -> list[usage.UsageRecord]:
        self.require_env(env_id)
        return usage.recent_requests(self.store, env_id, max(1, min(limit, 1000)))

    # The admin plane: operator tokens and the browser origins an environment allows (CORS).
    def create_operator_token(self, name: str = "") -> tuple[OperatorTokenRow, str]:
        """Return the stored row and the plain token, shown once."""
        check_name(name, "token name")
        row, plain = new_operator_token(name)
        access.insert_operator_token(self.store, row)
        return row, plain

    def list_operator_tokens(self) -> list[OperatorTokenRow]:
        return access.list_operator_tokens(self.store)

    def revoke_operator_token(self, token_id: str) -> bool:
        """True when this call revoked the token, False when it already was."""
        if token_id not in {t.id for t in access.list_operator_tokens(self.store)}:
            raise InvalidParam(f"no operator token with id {token_id!r}")
        return access.revoke_operator_token(self.store, token_id)

    def env_origins(self, env_id: str) -> list[str]:
        self.require_env(env_id)
        return access.env_origins(self.store, env_id).get(env_id, [])

    def set_env_origins(self, env_id: str, origins: list[str]) -> list[str]:
        """Replace the origins whose pages may call the chat API with this env's publishable keys."""
        self.require_env(env_id)
        origins = normalise_origins(origins)
        access.set_env_origins(self.store, env_id, origins)
        return origins

    # Admission limits: what `cbgate limits` and the admin API show and change.
    def env_limits(self, env_id: str) -> dict[str, int | None]:
        """The limits in force for the env's server keys: a number, or None for no limit."""
        self.require_env(env_id)
        limits = resolve_limits(stored_limits.env_limits(self.store, env_id).get(env_id))
        return {name: getattr(limits, name) for name in LIMIT_FIELDS}

    def set_env_limits(self, env_id: str, changes: dict[str, int | None]) -> dict[str, int | None]:
        """Set the named limits (a number >= 1, or None for no limit); others stay as they are."""
        self.require_env(env_id)
        stored = {}
        for name, value in changes.items():
            if name not in LIMIT_FIELDS:
                raise InvalidParam(f"unknown limit {name!r}; limits are {', '.join(LIMIT_FIELDS)}")
            value = limit_value(name, value)
            stored[name] = OFF if value is None else value
        stored_limits.set_env_limits(self.store, env_id, stored)
        return self.env_limits(env_id)
