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


def tokens_used(store: Store, accounts: list[str]) -> dict[str, int]:
    """Tokens each quota account used so far by the ledger: where a restarted limiter's quota counters start.
    An account is an env id, or `key:<key id>` for one API key's own quota."""
    t = schema.usage_ledger
    tokens = func.coalesce(func.sum(t.c.prompt_tokens + t.c.completion_tokens), 0)
    env_ids = [a for a in accounts if not a.startswith("key:")]
    key_ids = [a[4:] for a in accounts if a.startswith("key:")]
    found: dict[str, int] = {}
    with store.engine.connect() as conn:
        if env_ids:
            query = select(t.c.env_id, tokens).where(t.c.env_id.in_(env_ids)).group_by(t.c.env_id)
            found.update({env: int(used) for env, used in conn.execute(query)})
        if key_ids:
            query = select(t.c.key_id, tokens).where(t.c.key_id.in_(key_ids)).group_by(t.c.key_id)
            found.update({f"key:{key}": int(used) for key, used in conn.execute(query)})
    return {account: found.get(account, 0) for account in accounts}
