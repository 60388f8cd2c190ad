"""Stored Responses: save, load, delete and expire, always within one environment (the only SQL for them)."""
from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import delete, insert, select

from cbgate.store import schema
from cbgate.store.db import Store


@dataclass(slots=True)
class StoredResponse:
    id: str
    env_id: str
    model: str
    previous_response_id: str | None
    created_at: float
    expires_at: float
    body: dict  # the Response object as the client got it
    input_items: list[dict]  # the items this request sent
    context: list[dict]  # the conversation to continue from (canonical chat messages)


def save_response(store: Store, stored: StoredResponse) -> None:
    row = {"id": stored.id, "env_id": stored.env_id, "model": stored.model,
           "previous_response_id": stored.previous_response_id, "created_at": stored.created_at,
           "expires_at": stored.expires_at, "body": orjson.dumps(stored.body).decode(),
           "input_items": orjson.dumps(stored.input_items).decode(), "context": orjson.dumps(stored.context).decode()}
    with store.engine.begin() as conn:
        conn.execute(insert(schema.stored_responses).values(**row))


def load_response(store: Store, env_id: str, response_id: str, now: float) -> StoredResponse | None:
    """The environment's response, or None: unknown, another environment's, or expired look the same."""
    t = schema.stored_responses
    query = select(t).where(t.c.id == response_id, t.c.env_id == env_id, t.c.expires_at > now)
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    r = row._mapping
    return StoredResponse(r["id"], r["env_id"], r["model"], r["previous_response_id"], r["created_at"],
                          r["expires_at"], orjson.loads(r["body"]), orjson.loads(r["input_items"]),
                          orjson.loads(r["context"]))


def delete_response(store: Store, env_id: str, response_id: str) -> bool:
    t = schema.stored_responses
    with store.engine.begin() as conn:
        return conn.execute(delete(t).where(t.c.id == response_id, t.c.env_id == env_id)).rowcount > 0


def purge_expired(store: Store, now: float) -> int:
    t = schema.stored_responses
    with store.engine.begin() as conn:
        return conn.execute(delete(t).where(t.c.expires_at <= now)).rowcount
