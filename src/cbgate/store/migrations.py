"""Append-only named migrations: each runs once per database, in order, and is recorded."""
from __future__ import annotations

import time
from typing import Callable

from sqlalchemy import Column, Float, Index, MetaData, String, Table, Text, insert, inspect, select, text
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


def _protocol_surfaces(conn: Connection) -> None:
    """The other API surfaces (issue 12): what the ledger meters beside tokens, and stored Responses.
    Its own DDL, as it was on the day it was written."""
    for column, sql_type in (("surface", "VARCHAR(16) NOT NULL DEFAULT 'chat'"),
                             ("cache_creation_tokens", "BIGINT NOT NULL DEFAULT 0"),
                             ("cache_read_tokens", "BIGINT NOT NULL DEFAULT 0"),
                             ("images", "INTEGER NOT NULL DEFAULT 0")):
        _add_column(conn, "usage_ledger", column, sql_type)
    frozen = MetaData()
    stored = Table(
        "stored_responses", frozen,
        Column("id", String(64), primary_key=True),
        Column("env_id", String(64), nullable=False),
        Column("model", String(128), nullable=False),
        Column("previous_response_id", String(64)),
        Column("created_at", Float, nullable=False),
        Column("expires_at", Float, nullable=False),
        Column("body", Text, nullable=False),
        Column("input_items", Text, nullable=False),
        Column("context", Text, nullable=False),
        Index("ix_stored_responses_env", "env_id", "id"),
        Index("ix_stored_responses_expires", "expires_at"),
    )
    stored.create(conn, checkfirst=True)


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("0001_core_tables", _v1_core_tables),
    ("0002_usage_ledger", _v4_usage_ledger),
    ("0003_admin_plane", _admin_plane),
    ("0004_env_limits", _env_limits),
    ("0005_model_groups", _model_groups),
    ("0006_group_timeouts", _group_timeouts),
    ("0007_ledger_content", _ledger_content),
    ("0008_protocol_surfaces", _protocol_surfaces),
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


def migration_status(conn: Connection) -> dict[str, list[str]]:
    """The migrations applied to this database and those this version would still apply."""
    if not inspect(conn).has_table(schema.migrations.name):
        return {"applied": [], "pending": [name for name, _ in MIGRATIONS]}
    done = set(conn.execute(select(schema.migrations.c.name)).scalars())
    return {"applied": [name for name, _ in MIGRATIONS if name in done],
            "pending": [name for name, _ in MIGRATIONS if name not in done]}
