"""Append-only named migrations: each runs once per database, in order, and is recorded."""
from __future__ import annotations

import time
from typing import Callable

from sqlalchemy import insert, inspect, select, text
from sqlalchemy.engine import Connection

from cbgate.store import schema


def _v1_core_tables(conn: Connection) -> None:
    for table in (schema.meta, schema.envs, schema.api_keys, schema.model_switches):
        table.create(conn, checkfirst=True)
    conn.execute(insert(schema.meta).values(name="revision", value=1))


def _v4_usage_ledger(conn: Connection) -> None:
    schema.usage_ledger.create(conn, checkfirst=True)


def _admin_plane(conn: Connection) -> None:
    schema.operator_tokens.create(conn, checkfirst=True)
    schema.env_origins.create(conn, checkfirst=True)


def _env_limits(conn: Connection) -> None:
    schema.env_limits.create(conn, checkfirst=True)


def _model_groups(conn: Connection) -> None:
    schema.model_groups.create(conn, checkfirst=True)


def _add_column(conn: Connection, table: str, column: str, sql_type: str) -> None:
    # A database made before the step lacks the column; one made after has it from its table definition.
    if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))


def _group_timeouts(conn: Connection) -> None:
    _add_column(conn, "model_groups", "timeouts", "VARCHAR(512)")


def _ledger_content(conn: Connection) -> None:
    _add_column(conn, "usage_ledger", "content", "TEXT")


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("0001_core_tables", _v1_core_tables),
    ("0002_usage_ledger", _v4_usage_ledger),
    ("0003_admin_plane", _admin_plane),
    ("0004_env_limits", _env_limits),
    ("0005_model_groups", _model_groups),
    ("0006_group_timeouts", _group_timeouts),
    ("0007_ledger_content", _ledger_content),
]


def migrate(conn: Connection) -> list[str]:
    """Apply the migrations this database lacks; return their names."""
    schema.migrations.create(conn, checkfirst=True)
    done = set(conn.execute(select(schema.migrations.c.name)).scalars())
    applied = []
    for name, step in MIGRATIONS:
        if name in done:
            continue
        step(conn)
        conn.execute(insert(schema.migrations).values(name=name, applied_at=time.time()))
        applied.append(name)
    return applied
