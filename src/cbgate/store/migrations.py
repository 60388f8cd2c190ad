"""Append-only named migrations: each runs once per database, in order, and is recorded."""
from __future__ import annotations

import time
from typing import Callable

from sqlalchemy import (BigInteger, Boolean, Column, Float, Index, Integer, MetaData, PrimaryKeyConstraint, String,
                        Table, Text, UniqueConstraint, insert, inspect, select, text)
from sqlalchemy.engine import Connection

from cbgate.store import schema


# Each step carries the DDL of its day, frozen: a later change to schema.py never changes what an old step
# does. Python-side defaults live in schema.py (they are not DDL); server defaults are written here.

def _v1_core_tables(conn: Connection) -> None:
    frozen = MetaData()
    meta = Table("meta", frozen, Column("name", String(64), primary_key=True),
                 Column("value", BigInteger, nullable=False))
    Table("envs", frozen, Column("id", String(64), primary_key=True), Column("created_at", Float, nullable=False))
    Table("api_keys", frozen,
          Column("id", String(32), primary_key=True),
          Column("env_id", String(64), nullable=False, index=True),
          Column("digest", String(64), nullable=False, unique=True),
          Column("prefix", String(32), nullable=False),
          Column("kind", String(16), nullable=False),
          Column("name", String(128), nullable=False),
          Column("created_at", Float, nullable=False),
          Column("expires_at", Float),
          Column("revoked_at", Float),
          Column("last_used_at", Float))
    Table("model_switches", frozen,
          Column("env_id", String(64), nullable=False),
          Column("group_name", String(64), nullable=False),
          Column("model", String(128), nullable=False),
          Column("enabled", Boolean, nullable=False),
          PrimaryKeyConstraint("env_id", "group_name", "model"))
    frozen.create_all(conn, checkfirst=True)
    conn.execute(insert(meta).values(name="revision", value=1))


def _usage_ledger(conn: Connection) -> None:
    frozen = MetaData()
    Table("usage_ledger", frozen,
          Column("request_id", String(64), primary_key=True),
          Column("env_id", String(64), nullable=False),
          Column("key_id", String(32)),
          Column("group_name", String(64), nullable=False),
          Column("model", String(128), nullable=False),
          Column("deployment", String(256), nullable=False),
          Column("stream", Boolean, nullable=False),
          Column("prompt_tokens", BigInteger, nullable=False),
          Column("completion_tokens", BigInteger, nullable=False),
          Column("estimated", Boolean, nullable=False),
          Column("status", Integer, nullable=False),
          Column("code", String(64)),
          Column("latency_ms", Float, nullable=False),
          Column("ttft_ms", Float),
          Column("disconnected", Boolean, nullable=False),
          Column("created_at", Float, nullable=False),
          Column("day", String(10), nullable=False),
          Index("ix_usage_ledger_env_created", "env_id", "created_at"),
          Index("ix_usage_ledger_created", "created_at"))
    frozen.create_all(conn, checkfirst=True)


def _admin_plane(conn: Connection) -> None:
    frozen = MetaData()
    Table("operator_tokens", frozen,
          Column("id", String(32), primary_key=True),
          Column("digest", String(64), nullable=False, unique=True),
          Column("prefix", String(32), nullable=False),
          Column("name", String(128), nullable=False),
          Column("created_at", Float, nullable=False),
          Column("revoked_at", Float))
    Table("env_origins", frozen,
          Column("env_id", String(64), nullable=False),
          Column("origin", String(255), nullable=False),
          PrimaryKeyConstraint("env_id", "origin"))
    frozen.create_all(conn, checkfirst=True)


def _env_limits(conn: Connection) -> None:
    frozen = MetaData()
    Table("env_limits", frozen,
          Column("env_id", String(64), primary_key=True),
          Column("concurrency", BigInteger),
          Column("rpm", BigInteger),
          Column("tpm", BigInteger),
          Column("token_quota", BigInteger))
    frozen.create_all(conn, checkfirst=True)


def _model_groups(conn: Connection) -> None:
    frozen = MetaData()
    Table("model_groups", frozen,
          Column("env_id", String(64), nullable=False),
          Column("name", String(64), nullable=False),
          Column("kind", String(16), nullable=False),
          Column("base_url", String(1024), nullable=False),
          Column("protocol", String(16), nullable=False),
          Column("secret", String(4096)),
          Column("enabled", Boolean, nullable=False),
          Column("created_at", Float, nullable=False),
          Column("updated_at", Float, nullable=False),
          PrimaryKeyConstraint("env_id", "name"))
    frozen.create_all(conn, checkfirst=True)


def _add_column(conn: Connection, table: str, column: str, sql_type: str) -> None:
    # Earlier versions created tables from the live schema, so a database they made may have the column already.
    if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))


def _group_timeouts(conn: Connection) -> None:
    _add_column(conn, "model_groups", "timeouts", "VARCHAR(512)")


def _ledger_content(conn: Connection) -> None:
    _add_column(conn, "usage_ledger", "content", "TEXT")


def _protocol_surfaces(conn: Connection) -> None:
    """The other API surfaces (issue 12): what the ledger meters beside tokens, and stored Responses."""
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


def _agents(conn: Connection) -> None:
    """The Agent API (issue 19): agents per environment (ones the gateway runs on its model service, and
    AG-UI servers it fronts), their conversations and records, and the agent a ledger record ran for."""
    _add_column(conn, "usage_ledger", "agent_id", "VARCHAR(64)")
    frozen = MetaData()
    Table("agents", frozen,
          Column("id", String(64), primary_key=True),
          Column("env_id", String(64), nullable=False),
          Column("name", String(128), nullable=False),
          Column("kind", String(16), nullable=False),
          Column("model", String(128)),
          Column("group_name", String(64)),
          Column("instructions", Text),
          Column("welcome", Text),
          Column("introduction", Text),
          Column("questions", Text),
          Column("url", String(2048)),
          Column("created_at", Float, nullable=False),
          Column("updated_at", Float, nullable=False),
          Index("ix_agents_env", "env_id", "created_at"))
    Table("agent_conversations", frozen,
          Column("id", String(128), nullable=False),
          Column("env_id", String(64), nullable=False),
          Column("agent_id", String(64), nullable=False),
          Column("title", String(256), nullable=False),
          Column("created_at", Float, nullable=False),
          Column("updated_at", Float, nullable=False),
          PrimaryKeyConstraint("env_id", "agent_id", "id"),
          Index("ix_agent_conversations_agent", "env_id", "agent_id", "updated_at"))
    Table("agent_records", frozen,
          Column("id", String(64), primary_key=True),
          Column("env_id", String(64), nullable=False),
          Column("agent_id", String(64), nullable=False),
          Column("conversation_id", String(128), nullable=False),
          Column("role", String(16), nullable=False),
          Column("content", Text, nullable=False),
          Column("created_at", Float, nullable=False),
          Column("seq", Integer, nullable=False),
          Index("ix_agent_records_thread", "env_id", "agent_id", "conversation_id", "created_at"))
    frozen.create_all(conn, checkfirst=True)


def _costs(conn: Connection) -> None:
    """Prices and cost (issue 21): each ledger record's cost, and the prices environments set."""
    for column, sql_type in (("cost_micros", "BIGINT NOT NULL DEFAULT 0"),
                             ("currency", "VARCHAR(8) NOT NULL DEFAULT ''")):
        _add_column(conn, "usage_ledger", column, sql_type)
    frozen = MetaData()
    Table("model_prices", frozen,
          Column("env_id", String(64), nullable=False),
          Column("group_name", String(64), nullable=False),
          Column("model", String(128), nullable=False),
          Column("currency", String(8), nullable=False),
          Column("tiers", Text, nullable=False),
          Column("updated_at", Float, nullable=False),
          PrimaryKeyConstraint("env_id", "group_name", "model")).create(conn, checkfirst=True)


def _ledger_key_index(conn: Connection) -> None:
    """A key's own token quota (issue 21) is reconciled from the ledger's rows of that key."""
    if "ix_usage_ledger_key" not in {i["name"] for i in inspect(conn).get_indexes("usage_ledger")}:
        conn.execute(text("CREATE INDEX ix_usage_ledger_key ON usage_ledger (key_id, created_at)"))


def _mcp_services(conn: Connection) -> None:
    """MCP through the gateway (issue 20): the services an environment fronts, each key's permissions
    (one JSON value), and how a metered tool call ended."""
    _add_column(conn, "api_keys", "permissions", "TEXT")
    _add_column(conn, "usage_ledger", "outcome", "VARCHAR(16)")
    frozen = MetaData()
    Table("mcp_services", frozen,
          Column("env_id", String(64), nullable=False),
          Column("name", String(64), nullable=False),
          Column("url", String(2048), nullable=False),
          Column("transport", String(16), nullable=False),
          Column("headers", Text),
          Column("timeout", Float),
          Column("enabled", Boolean, nullable=False),
          Column("created_at", Float, nullable=False),
          Column("updated_at", Float, nullable=False),
          PrimaryKeyConstraint("env_id", "name")).create(conn, checkfirst=True)


def _agent_mcp(conn: Connection) -> None:
    """Agents the gateway runs call MCP tools server-side (issue 20, part 6): the environment's MCP services
    an agent may use, as a JSON list of names."""
    _add_column(conn, "agents", "mcp_services", "TEXT")


def _budgets(conn: Connection) -> None:
    """Budgets (issue 21): one row per (env, key or "" for the whole env, period), in money micro-units of a
    currency or in tokens."""
    frozen = MetaData()
    Table("budgets", frozen,
          Column("id", String(32), primary_key=True),
          Column("env_id", String(64), nullable=False),
          Column("key_id", String(32), nullable=False),
          Column("period", String(8), nullable=False),
          Column("kind", String(8), nullable=False),
          Column("limit_amount", BigInteger, nullable=False),
          Column("currency", String(8), nullable=False),
          Column("created_at", Float, nullable=False),
          Column("updated_at", Float, nullable=False),
          UniqueConstraint("env_id", "key_id", "period", name="uq_budgets_scope")).create(conn, checkfirst=True)


def _deployment_caps(conn: Connection) -> None:
    """What a custom group's upstream reads besides text (issue 18). Rows made before stay NULL, not declared:
    their image and audio parts still go up as sent, as they did."""
    _add_column(conn, "model_groups", "vision", "BOOLEAN")
    _add_column(conn, "model_groups", "audio_input", "BOOLEAN")


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("0001_core_tables", _v1_core_tables),
    ("0002_usage_ledger", _usage_ledger),
    ("0003_admin_plane", _admin_plane),
    ("0004_env_limits", _env_limits),
    ("0005_model_groups", _model_groups),
    ("0006_group_timeouts", _group_timeouts),
    ("0007_ledger_content", _ledger_content),
    ("0008_protocol_surfaces", _protocol_surfaces),
    ("0010_costs", _costs),
    ("0010_ledger_key_index", _ledger_key_index),
    ("0011_agents", _agents),
    ("0012_mcp_services", _mcp_services),
    ("0013_agent_mcp", _agent_mcp),
    ("0014_budgets", _budgets),
    ("0015_deployment_caps", _deployment_caps),
]

# Ids these steps were recorded under before they were renumbered (databases made then carry them).
FORMER_IDS = {"0004_usage_ledger": "0002_usage_ledger", "0007_admin_plane": "0003_admin_plane",
              "0003_env_limits": "0004_env_limits", "0002_model_groups": "0005_model_groups"}
KNOWN_IDS = frozenset(name for name, _ in MIGRATIONS) | FORMER_IDS.keys()


def _applied(conn: Connection) -> set[str]:
    """The steps this database has, each by its present id."""
    return {FORMER_IDS.get(name, name) for name in conn.execute(select(schema.migrations.c.name)).scalars()}


def migrate(conn: Connection) -> list[str]:
    """Apply the migrations this database lacks; return their names."""
    schema.migrations.create(conn, checkfirst=True)
    done = _applied(conn)
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
    done = _applied(conn)
    return {"applied": [name for name, _ in MIGRATIONS if name in done],
            "pending": [name for name, _ in MIGRATIONS if name not in done]}
