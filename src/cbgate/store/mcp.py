"""MCP services per environment (env-level state: every change bumps the revision, so replicas reload).

A service is an upstream MCP server reached by its URL over Streamable HTTP or SSE. Its own credentials
(headers) arrive here already encrypted, as one JSON object.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from cbgate.store import schema
from cbgate.store.db import Store, StoreConflict


@dataclass(frozen=True, slots=True)
class McpServiceRow:
    env_id: str
    name: str
    url: str
    transport: str  # "streamable-http" | "sse"
    headers: str | None  # encrypted JSON {name: value}; None: no headers of its own
    timeout: float | None  # seconds a call may take; None: the default
    enabled: bool
    created_at: float
    updated_at: float


def list_services(store: Store, env_id: str | None = None) -> list[McpServiceRow]:
    t = schema.mcp_services
    query = select(t).order_by(t.c.env_id, t.c.name)
    if env_id is not None:
        query = query.where(t.c.env_id == env_id)
    with store.engine.connect() as conn:
        return [McpServiceRow(**r._mapping) for r in conn.execute(query)]


def insert_service(store: Store, row: McpServiceRow) -> None:
    try:
        with store.changing() as conn:
            conn.execute(insert(schema.mcp_services).values(**asdict(row)))
    except IntegrityError as exc:
        raise StoreConflict(f"MCP service {row.name} already exists in {row.env_id}") from exc


def update_service(store: Store, env_id: str, name: str, **values) -> bool:
    t = schema.mcp_services
    with store.changing() as conn:
        result = conn.execute(update(t).where(t.c.env_id == env_id, t.c.name == name)
                              .values(updated_at=time.time(), **values))
        return result.rowcount > 0


def delete_service(store: Store, env_id: str, name: str) -> bool:
    t = schema.mcp_services
    with store.changing() as conn:
        return conn.execute(delete(t).where(t.c.env_id == env_id, t.c.name == name)).rowcount > 0
