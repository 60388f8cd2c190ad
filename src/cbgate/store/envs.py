"""Environments, their API keys (SHA-256 digests only) and their model switches: env-level state, so
every change bumps the revision and replicas reload their snapshot."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from cbgate.store import schema
from cbgate.store.db import Store, StoreConflict


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: str
    env_id: str
    digest: str
    prefix: str
    kind: str
    name: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None
    permissions: str | None = None  # JSON of cbgate.core.permissions.KeyPermissions; None: the kind's defaults


def create_env(store: Store, env_id: str, default_models: dict[str, list[str]]) -> None:
    try:
        with store.changing() as conn:
            conn.execute(insert(schema.envs).values(id=env_id, created_at=time.time()))
            rows = [{"env_id": env_id, "group_name": g, "model": m, "enabled": True}
                    for g, models in default_models.items() for m in models]
            if rows:
                conn.execute(insert(schema.model_switches), rows)
    except IntegrityError as exc:
        raise StoreConflict(f"environment {env_id} already exists") from exc


def list_envs(store: Store) -> list[tuple[str, float]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(schema.envs.c.id, schema.envs.c.created_at).order_by(schema.envs.c.id))]


def env_exists(store: Store, env_id: str) -> bool:
    with store.engine.connect() as conn:
        return conn.execute(select(schema.envs.c.id).where(schema.envs.c.id == env_id)).first() is not None


def insert_key(store: Store, row: KeyRow) -> None:
    with store.changing() as conn:
        conn.execute(insert(schema.api_keys).values(**asdict(row)))


def list_keys(store: Store, env_id: str | None = None) -> list[KeyRow]:
    query = select(schema.api_keys).order_by(schema.api_keys.c.created_at)
    if env_id is not None:
        query = query.where(schema.api_keys.c.env_id == env_id)
    with store.engine.connect() as conn:
        return [KeyRow(**r._mapping) for r in conn.execute(query)]


def revoke_key(store: Store, key_id: str) -> bool:
    with store.changing() as conn:
        result = conn.execute(update(schema.api_keys)
                              .where(schema.api_keys.c.id == key_id, schema.api_keys.c.revoked_at.is_(None))
                              .values(revoked_at=time.time()))
        return result.rowcount > 0


def set_key_permissions(store: Store, env_id: str, key_id: str, permissions: str | None) -> bool:
    """Replace the key's permissions whole (never merged: a grant left out is revoked)."""
    t = schema.api_keys
    with store.changing() as conn:
        return conn.execute(update(t).where(t.c.id == key_id, t.c.env_id == env_id)
                            .values(permissions=permissions)).rowcount > 0


def touch_keys(store: Store, last_used: dict[str, float]) -> None:
    """Record when keys were last used; batched, and not a change replicas need to see."""
    if not last_used:
        return
    with store.engine.begin() as conn:
        for key_id, when in last_used.items():
            conn.execute(update(schema.api_keys).where(schema.api_keys.c.id == key_id)
                         .values(last_used_at=when))


def model_switches(store: Store, env_id: str | None = None) -> list[tuple[str, str, str, bool]]:
    t = schema.model_switches
    query = select(t.c.env_id, t.c.group_name, t.c.model, t.c.enabled)
    if env_id is not None:
        query = query.where(t.c.env_id == env_id)
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def set_model_switch(store: Store, env_id: str, group: str, model: str, enabled: bool) -> None:
    t = schema.model_switches
    with store.changing() as conn:
        conn.execute(delete(t).where(t.c.env_id == env_id, t.c.group_name == group, t.c.model == model))
        conn.execute(insert(t).values(env_id=env_id, group_name=group, model=model, enabled=enabled))
