"""Table definitions shared by SQLite and PostgreSQL."""
from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, MetaData, PrimaryKeyConstraint, String, Table

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

migrations = Table(
    "schema_migrations", metadata,
    Column("name", String(128), primary_key=True),
    Column("applied_at", Float, nullable=False),
)

envs = Table(
    "envs", metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(32), primary_key=True),
    Column("env_id", String(64), nullable=False, index=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("prefix", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(128), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
)

model_switches = Table(
    "model_switches", metadata,
    Column("env_id", String(64), nullable=False),
    Column("group_name", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("enabled", Boolean, nullable=False),
    PrimaryKeyConstraint("env_id", "group_name", "model"),
)
