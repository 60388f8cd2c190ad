"""Budgets' rows (env-level state: a change bumps the revision, so every replica admits under the new
budgets from its next snapshot), and the ledger's spend that a budget's counter is rebuilt from."""
from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update

from cbgate.store import schema
from cbgate.store.db import Store

ENV_WIDE = ""  # key_id stored for a budget of the whole environment (NULL would defeat the unique constraint)


@dataclass(frozen=True, slots=True)
class BudgetRow:
    id: str
    env_id: str
    key_id: str | None  # None: the whole environment
    period: str  # day | month | total
    kind: str  # money | tokens
    limit: int  # micro-units of `currency`, or tokens
    currency: str | None  # None for tokens
    created_at: float
    updated_at: float


def _row(r) -> BudgetRow:
    return BudgetRow(r.id, r.env_id, r.key_id or None, r.period, r.kind, int(r.limit_amount), r.currency or None,
                     r.created_at, r.updated_at)


def list_budgets(store: Store, env_id: str | None = None) -> list[BudgetRow]:
    t = schema.budgets
    query = select(t) if env_id is None else select(t).where(t.c.env_id == env_id)
    with store.engine.connect() as conn:
        return [_row(r) for r in conn.execute(query.order_by(t.c.env_id, t.c.key_id, t.c.period))]


def get_budget(store: Store, env_id: str, budget_id: str) -> BudgetRow | None:
    t = schema.budgets
    with store.engine.connect() as conn:
        found = conn.execute(select(t).where((t.c.env_id == env_id) & (t.c.id == budget_id))).first()
    return _row(found) if found is not None else None


def put_budget(store: Store, new_id: str, env_id: str, key_id: str | None, period: str, kind: str, limit: int,
               currency: str | None) -> BudgetRow:
    """Create the budget of (env, key, period), or replace its amount (keeping its id)."""
    t = schema.budgets
    now = time.time()
    scope = (t.c.env_id == env_id) & (t.c.key_id == (key_id or ENV_WIDE)) & (t.c.period == period)
    values = {"kind": kind, "limit_amount": limit, "currency": currency or "", "updated_at": now}
    with store.changing() as conn:
        if conn.execute(update(t).where(scope).values(**values)).rowcount == 0:
            conn.execute(insert(t).values(id=new_id, env_id=env_id, key_id=key_id or ENV_WIDE, period=period,
                                          created_at=now, **values))
        return _row(conn.execute(select(t).where(scope)).one())


def delete_budget(store: Store, env_id: str, budget_id: str) -> bool:
    t = schema.budgets
    with store.changing() as conn:
        return conn.execute(delete(t).where((t.c.env_id == env_id) & (t.c.id == budget_id))).rowcount > 0


def spent(store: Store, env_id: str, key_id: str | None, unit: str, start: float, end: float | None) -> int:
    """What the ledger says was spent from `start` to `end` (None: no end) by the env, or by one key of it:
    tokens (unit "tokens") or cost in micro-units of the currency `unit` (records in other currencies, or
    unpriced, cost this budget nothing)."""
    t = schema.usage_ledger
    amount = t.c.prompt_tokens + t.c.completion_tokens if unit == "tokens" else t.c.cost_micros
    where = (t.c.env_id == env_id) & (t.c.created_at >= start)
    if end is not None:
        where &= t.c.created_at < end
    if key_id is not None:
        where &= t.c.key_id == key_id
    if unit != "tokens":
        where &= t.c.currency == unit
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(amount), 0)).where(where)).scalar_one())
