"""The prices environments set for their groups' models (env-level state: a change bumps the revision, so
every replica prices with the new table from its next snapshot)."""
from __future__ import annotations

import json
import time

from sqlalchemy import delete, insert, select, update

from cbgate.pricing import PriceTable
from cbgate.store import schema
from cbgate.store.db import Store


def list_prices(store: Store, env_id: str | None = None) -> dict[tuple[str, str, str], PriceTable]:
    """(env, group, model) -> its price table."""
    t = schema.model_prices
    query = select(t) if env_id is None else select(t).where(t.c.env_id == env_id)
    with store.engine.connect() as conn:
        return {(r.env_id, r.group_name, r.model): PriceTable.from_dict({"currency": r.currency,
                                                                         "tiers": json.loads(r.tiers)})
                for r in conn.execute(query.order_by(t.c.env_id, t.c.group_name, t.c.model))}


def set_price(store: Store, env_id: str, group: str, model: str, table: PriceTable) -> None:
    t = schema.model_prices
    values = {"currency": table.currency, "tiers": json.dumps(table.as_dict()["tiers"]), "updated_at": time.time()}
    where = (t.c.env_id == env_id) & (t.c.group_name == group) & (t.c.model == model)
    with store.changing() as conn:
        if conn.execute(update(t).where(where).values(**values)).rowcount == 0:
            conn.execute(insert(t).values(env_id=env_id, group_name=group, model=model, **values))


def delete_price(store: Store, env_id: str, group: str, model: str) -> bool:
    """True when there was a price to delete."""
    t = schema.model_prices
    with store.changing() as conn:
        return conn.execute(delete(t).where((t.c.env_id == env_id) & (t.c.group_name == group)
                                            & (t.c.model == model))).rowcount > 0
