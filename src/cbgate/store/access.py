"""Who may reach what: operator tokens (stored as SHA-256 digests) and each environment's allowed browser
origins. Both are env-level state: every change bumps the revision so replicas reload their snapshot."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from sqlalchemy import delete, insert, select, update

from cbgate.store import schema
from cbgate.store.db import Store


@dataclass(frozen=True, slots=True)
class OperatorTokenRow:
    id: str
    digest: str
    prefix: str
    name: str
    created_at: float
    revoked_at: float | None


def insert_operator_token(store: Store, row: OperatorTokenRow) -> None:
    with store.changing() as conn:
        conn.execute(insert(schema.operator_tokens).values(**asdict(row)))


def list_operator_tokens(store: Store) -> list[OperatorTokenRow]:
    t = schema.operator_tokens
    with store.engine.connect() as conn:
        return [OperatorTokenRow(**r._mapping) for r in conn.execute(select(t).order_by(t.c.created_at))]


def revoke_operator_token(store: Store, token_id: str) -> bool:
    t = schema.operator_tokens
    with store.changing() as conn:
        result = conn.execute(update(t).where(t.c.id == token_id, t.c.revoked_at.is_(None))
                              .values(revoked_at=time.time()))
        return result.rowcount > 0


def env_origins(store: Store, env_id: str | None = None) -> dict[str, list[str]]:
    """env id -> its allowed origins (sorted); envs without any are absent."""
    t = schema.env_origins
    query = select(t.c.env_id, t.c.origin).order_by(t.c.env_id, t.c.origin)
    if env_id is not None:
        query = query.where(t.c.env_id == env_id)
    found: dict[str, list[str]] = {}
    with store.engine.connect() as conn:
        for env, origin in conn.execute(query):
            found.setdefault(env, []).append(origin)
    return found


def set_env_origins(store: Store, env_id: str, origins: list[str]) -> None:
    """Replace the env's list in one transaction."""
    t = schema.env_origins
    with store.changing() as conn:
        conn.execute(delete(t).where(t.c.env_id == env_id))
        if origins:
            conn.execute(insert(t), [{"env_id": env_id, "origin": o} for o in origins])
