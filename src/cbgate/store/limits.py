"""Each environment's admission limits (env-level state: a change bumps the revision, so every replica
reloads them with its snapshot)."""
from __future__ import annotations

from sqlalchemy import func, insert, select, update

from cbgate.store import schema
from cbgate.store.db import Store

def env_limits(store: Store, env_id: str | None = None) -> dict[str, dict[str, int | None]]:
    """env id -> {field: stored value (None = default, -1 = off)}; envs never set are absent."""
    t = schema.env_limits
    query = select(t) if env_id is None else select(t).where(t.c.env_id == env_id)
    with store.engine.connect() as conn:
        return {r.env_id: {f: v for f, v in r._mapping.items() if f != "env_id"} for r in conn.execute(query)}


def set_env_limits(store: Store, env_id: str, changes: dict[str, int | None]) -> None:
    """Change only the fields given (in one transaction)."""
    t = schema.env_limits
    with store.changing() as conn:
        if conn.execute(select(t.c.env_id).where(t.c.env_id == env_id)).first() is None:
            conn.execute(insert(t).values(env_id=env_id, **changes))
        elif changes:
            conn.execute(update(t).where(t.c.env_id == env_id).values(**changes))


def tokens_used(store: Store, env_ids: list[str]) -> dict[str, int]:
    """Tokens each env used so far by the ledger: where a restarted limiter's quota counters start."""
    t = schema.usage_ledger
    query = (select(t.c.env_id, func.coalesce(func.sum(t.c.prompt_tokens + t.c.completion_tokens), 0))
             .where(t.c.env_id.in_(env_ids)).group_by(t.c.env_id))
    with store.engine.connect() as conn:
        found = {env: int(used) for env, used in conn.execute(query)}
    return {env: found.get(env, 0) for env in env_ids}
