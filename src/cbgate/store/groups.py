"""Model groups per environment (env-level state: every change bumps the revision, so replicas reload).

A custom group is one `model_groups` row plus one `model_switches` row per model (its membership and its
switch); a vendor group's row only carries the env's key and the group switch. Secrets arrive here
already encrypted.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from cbgate.store import schema
from cbgate.store.db import Store, StoreConflict


class GroupKind(StrEnum):
    """The three kinds of model group; the values of VENDOR and CUSTOM are what `model_groups.kind` stores."""
    CATALOG = "catalog"  # `cloudbase`: the operator's catalog, never a row
    VENDOR = "vendor"  # a built-in vendor group (hunyuan, deepseek): a row carries the env's key and switch
    CUSTOM = "custom"  # a tenant's own upstream


@dataclass(frozen=True, slots=True)
class GroupRow:
    env_id: str
    name: str
    kind: str  # a GroupKind value: VENDOR or CUSTOM
    base_url: str
    protocol: str
    secret: str | None  # encrypted
    enabled: bool
    created_at: float
    updated_at: float
    timeouts: dict[str, float] | None = None  # seconds by name (stored as JSON); None: the adapter's defaults
    vision: bool | None = None  # the upstream reads image parts; None: not declared (they go up as sent)
    audio_input: bool | None = None  # the upstream reads input_audio parts; None: not declared


def _encode(values: dict) -> dict:
    """Column values as stored: the timeouts as sorted JSON."""
    if values.get("timeouts") is not None:
        values = {**values, "timeouts": json.dumps(values["timeouts"], sort_keys=True)}
    return values


def _row(mapping) -> GroupRow:
    timeouts = mapping["timeouts"]
    return GroupRow(**{**mapping, "timeouts": json.loads(timeouts) if timeouts else None})


def list_groups(store: Store, env_id: str | None = None) -> list[GroupRow]:
    t = schema.model_groups
    query = select(t).order_by(t.c.env_id, t.c.name)
    if env_id is not None:
        query = query.where(t.c.env_id == env_id)
    with store.engine.connect() as conn:
        return [_row(r._mapping) for r in conn.execute(query)]


def insert_group(store: Store, row: GroupRow, models: list[str] | tuple[str, ...] = ()) -> None:
    switches = schema.model_switches
    try:
        with store.changing() as conn:
            conn.execute(insert(schema.model_groups).values(**_encode(asdict(row))))
            if models:
                conn.execute(delete(switches).where(switches.c.env_id == row.env_id,
                                                    switches.c.group_name == row.name))
                conn.execute(insert(switches), [{"env_id": row.env_id, "group_name": row.name, "model": m,
                                                 "enabled": True} for m in models])
    except IntegrityError as exc:
        raise StoreConflict(f"group {row.name} already exists in {row.env_id}") from exc


def change_group(store: Store, env_id: str, name: str, values: dict, models: list[str] | None = None,
                 first_row: GroupRow | None = None) -> bool:
    """One group edit in one transaction: the row's `values` (a vendor group without a row yet gets
    `first_row` carrying them) and a custom group's model list. False: there is no such group."""
    t = schema.model_groups
    with store.changing() as conn:
        if values:
            changed = conn.execute(update(t).where(t.c.env_id == env_id, t.c.name == name)
                                   .values(updated_at=time.time(), **_encode(values))).rowcount > 0
            if not changed:
                if first_row is None:
                    return False
                conn.execute(insert(t).values(**_encode(asdict(replace(first_row, **values)))))
        if models is not None:
            set_models(conn, env_id, name, models)
    return True


def set_models(conn, env_id: str, name: str, models: list[str]) -> None:
    """Make `models` a custom group's list, inside the caller's transaction: models kept keep their
    switch, new ones start on."""
    switches = schema.model_switches
    mine = (switches.c.env_id == env_id, switches.c.group_name == name)
    present = {r.model for r in conn.execute(select(switches.c.model).where(*mine))}
    gone = present - set(models)
    if gone:
        conn.execute(delete(switches).where(*mine, switches.c.model.in_(gone)))
    added = [m for m in models if m not in present]
    if added:
        conn.execute(insert(switches), [{"env_id": env_id, "group_name": name, "model": m, "enabled": True}
                                        for m in added])


def delete_group(store: Store, env_id: str, name: str) -> bool:
    t, switches = schema.model_groups, schema.model_switches
    with store.changing() as conn:
        conn.execute(delete(switches).where(switches.c.env_id == env_id, switches.c.group_name == name))
        return conn.execute(delete(t).where(t.c.env_id == env_id, t.c.name == name)).rowcount > 0
