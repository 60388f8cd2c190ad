"""A snapshot of env-level state (envs, keys, model switches), reloaded when the store's revision moves.

The hot path reads only the snapshot: no database query per request. Every replica polls one row, so
a change made by the CLI, the admin API or another replica is seen within `refresh_interval`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from cbgate.core.key_kinds import KeyKind
from cbgate.core.permissions import DEFAULT as DEFAULT_PERMISSIONS
from cbgate.core.permissions import KeyPermissions, from_json
from cbgate.errors import ServiceUnavailable
from cbgate.pricing import PriceTable
from cbgate.limits.base import SERVER_DEFAULTS, EnvLimits, publishable_limits, resolve_limits
from cbgate.store import access
from cbgate.store import budgets as stored_budgets
from cbgate.store import envs as stored_envs
from cbgate.store import groups as stored_groups
from cbgate.store import limits as stored_limits
from cbgate.store import mcp as stored_mcp
from cbgate.store import prices as stored_prices
from cbgate.store.access import OperatorTokenRow
from cbgate.store.budgets import BudgetRow
from cbgate.store.db import Store
from cbgate.store.envs import KeyRow
from cbgate.store.groups import GroupRow
from cbgate.store.mcp import McpServiceRow

log = logging.getLogger("cbgate.tenants")


@dataclass(frozen=True)
class TenantSnapshot:
    revision: int = 0
    envs: frozenset[str] = frozenset()
    keys: dict[str, KeyRow] = field(default_factory=dict)  # digest -> live (unrevoked) key
    switches: dict[tuple[str, str], dict[str, bool]] = field(default_factory=dict)  # (env, group) -> model -> on
    operators: dict[str, OperatorTokenRow] = field(default_factory=dict)  # digest -> live operator token
    origins: dict[str, frozenset[str]] = field(default_factory=dict)  # env -> browser origins it allows
    limits: dict[tuple[str, str], EnvLimits] = field(default_factory=dict)  # (env, key kind) -> its limits
    # (env, group) -> the env's group row; secrets stay encrypted here (the resolver decrypts into adapters)
    groups: dict[tuple[str, str], GroupRow] = field(default_factory=dict)
    prices: dict[tuple[str, str, str], PriceTable] = field(default_factory=dict)  # (env, group, model) -> set price
    mcp_services: dict[tuple[str, str], McpServiceRow] = field(default_factory=dict)  # (env, name) -> service
    permissions: dict[str, KeyPermissions] = field(default_factory=dict)  # key id -> its own, when it has some
    budgets: dict[str, tuple[BudgetRow, ...]] = field(default_factory=dict)  # env -> its budgets (env's and keys')

    def permissions_of(self, key_id: str) -> KeyPermissions:
        return self.permissions.get(key_id, DEFAULT_PERMISSIONS)

    def budgets_for(self, env_id: str, key_id: str | None) -> tuple[BudgetRow, ...]:
        """The budgets a request of this key spends from: its environment's and its own."""
        found = self.budgets.get(env_id)
        return tuple(b for b in found if b.key_id is None or b.key_id == key_id) if found else ()

    def model_enabled(self, env_id: str, group: str, model: str) -> bool | None:
        return self.switches.get((env_id, group), {}).get(model)

    def limits_for(self, env_id: str, kind: KeyKind) -> EnvLimits:
        found = self.limits.get((env_id, kind))
        if found is not None:
            return found
        return SERVER_DEFAULTS if kind is KeyKind.SERVER else PUBLISHABLE_OF_DEFAULTS


PUBLISHABLE_OF_DEFAULTS = publishable_limits(SERVER_DEFAULTS)


def _limits(store: Store) -> dict[tuple[str, str], EnvLimits]:
    found = {}
    for env_id, stored in stored_limits.env_limits(store).items():
        env = resolve_limits(stored)
        found[(env_id, KeyKind.SERVER)], found[(env_id, KeyKind.PUBLISHABLE)] = env, publishable_limits(env)
    return found


def _budgets(store: Store) -> dict[str, tuple[BudgetRow, ...]]:
    found: dict[str, list[BudgetRow]] = {}
    for budget in stored_budgets.list_budgets(store):
        found.setdefault(budget.env_id, []).append(budget)
    return {env: tuple(rows) for env, rows in found.items()}


def load_snapshot(store: Store) -> TenantSnapshot:
    revision = store.revision()
    switches: dict[tuple[str, str], dict[str, bool]] = {}
    for env_id, group, model, enabled in stored_envs.model_switches(store):
        switches.setdefault((env_id, group), {})[model] = bool(enabled)
    keys = [k for k in stored_envs.list_keys(store) if k.revoked_at is None]
    return TenantSnapshot(
        revision=revision,
        envs=frozenset(env_id for env_id, _ in stored_envs.list_envs(store)),
        keys={k.digest: k for k in keys},
        permissions={k.id: from_json(k.permissions) for k in keys if k.permissions},
        switches=switches,
        operators={t.digest: t for t in access.list_operator_tokens(store) if t.revoked_at is None},
        origins={env: frozenset(found) for env, found in access.env_origins(store).items()},
        limits=_limits(store),
        groups={(g.env_id, g.name): g for g in stored_groups.list_groups(store)},
        mcp_services={(s.env_id, s.name): s for s in stored_mcp.list_services(store)},
        prices=stored_prices.list_prices(store),
        budgets=_budgets(store),
    )


class TenantDirectory:
    def __init__(self, store: Store, refresh_interval: float, max_age: float = 30.0):
        self.store = store
        self.refresh_interval = refresh_interval
        self.max_age = max_age
        self.snapshot = load_snapshot(store)
        self.loaded_at = time.monotonic()
        self._last_used: dict[str, float] = {}

    def current(self) -> TenantSnapshot:
        """The snapshot to authenticate with. A store that has not answered for `max_age` seconds may
        hide a revoked key, so past that the gateway fails closed (503) instead of guessing."""
        if time.monotonic() - self.loaded_at > self.max_age:
            raise ServiceUnavailable("the gateway cannot reach its database to check API keys; try again shortly",
                                     retry_after=5)
        return self.snapshot

    def note_key_used(self, key_id: str) -> None:
        self._last_used[key_id] = time.time()

    def _refresh_once(self, used: dict[str, float]) -> None:
        if self.store.revision() != self.snapshot.revision:
            self.snapshot = load_snapshot(self.store)
        self.loaded_at = time.monotonic()
        stored_envs.touch_keys(self.store, used)

    async def refresh(self) -> None:
        used, self._last_used = self._last_used, {}  # swapped on the loop, where it is written
        try:
            await asyncio.to_thread(self._refresh_once, used)
        except Exception:
            for key_id, when in used.items():  # kept for the next try; a newer use wins
                self._last_used.setdefault(key_id, when)
            raise

    async def run(self) -> None:
        """Poll until cancelled; a failing store is logged and retried, the last snapshot kept."""
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh()
            except Exception as exc:  # the store may be briefly unreachable
                log.warning("could not refresh tenant snapshot: %s", exc)
