"""Agents, their conversations and records: the only SQL for them, always within one environment (an
agent, conversation or record of another environment is not found, never shown)."""
from __future__ import annotations

from dataclasses import dataclass, fields

import orjson
from sqlalchemy import delete, func, insert, select, update

from cbgate.store import schema
from cbgate.store.db import Store, StoreConflict

KIND_MODEL = "model"  # the gateway runs it on its model service
KIND_URL = "url"  # an AG-UI server the gateway fronts


@dataclass(slots=True)
class AgentRow:
    id: str
    env_id: str
    name: str
    kind: str
    model: str | None = None
    group_name: str | None = None
    instructions: str | None = None
    welcome: str | None = None
    introduction: str | None = None
    questions: list[str] | None = None
    url: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    mcp_services: list[str] | None = None  # MCP services of its env whose tools its runs call server-side


@dataclass(slots=True)
class ConversationRow:
    id: str
    env_id: str
    agent_id: str
    title: str
    created_at: float
    updated_at: float


@dataclass(slots=True)
class RecordRow:
    id: str
    env_id: str
    agent_id: str
    conversation_id: str
    role: str
    content: str
    created_at: float
    seq: int


def _agent(row) -> AgentRow:
    r = dict(row._mapping)
    r["questions"] = orjson.loads(r["questions"]) if r["questions"] else []
    r["mcp_services"] = orjson.loads(r["mcp_services"]) if r.get("mcp_services") else []
    return AgentRow(**r)


def _agent_values(agent: AgentRow) -> dict:
    values = {f.name: getattr(agent, f.name) for f in fields(AgentRow)}
    values["questions"] = orjson.dumps(agent.questions or []).decode()
    values["mcp_services"] = orjson.dumps(agent.mcp_services or []).decode()
    return values


def insert_agent(store: Store, agent: AgentRow) -> None:
    t = schema.agents
    with store.engine.begin() as conn:
        if conn.execute(select(t.c.id).where(t.c.env_id == agent.env_id, t.c.name == agent.name)).first():
            raise StoreConflict(f"environment {agent.env_id!r} already has an agent named {agent.name!r}")
        conn.execute(insert(t).values(**_agent_values(agent)))


def list_agents(store: Store, env_id: str, offset: int = 0, limit: int | None = None) -> tuple[list[AgentRow], int]:
    """A page of the env's agents, oldest first, and how many it has in all."""
    t = schema.agents
    query = select(t).where(t.c.env_id == env_id).order_by(t.c.created_at, t.c.id).offset(offset)
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t).where(t.c.env_id == env_id)).scalar_one()
        rows = conn.execute(query.limit(limit) if limit is not None else query)
        return [_agent(r) for r in rows], int(total)


def get_agent(store: Store, env_id: str, agent_id: str) -> AgentRow | None:
    t = schema.agents
    with store.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.env_id == env_id, t.c.id == agent_id)).first()
    return _agent(row) if row is not None else None


def find_agent(store: Store, env_id: str, id_or_name: str) -> AgentRow | None:
    """By id, or else by name (the CLI takes either)."""
    found = get_agent(store, env_id, id_or_name)
    if found is not None:
        return found
    t = schema.agents
    with store.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.env_id == env_id, t.c.name == id_or_name)).first()
    return _agent(row) if row is not None else None


def replace_agent(store: Store, agent: AgentRow) -> None:
    t = schema.agents
    values = _agent_values(agent)
    with store.engine.begin() as conn:
        clash = conn.execute(select(t.c.id).where(t.c.env_id == agent.env_id, t.c.name == agent.name,
                                                  t.c.id != agent.id)).first()
        if clash:
            raise StoreConflict(f"environment {agent.env_id!r} already has an agent named {agent.name!r}")
        conn.execute(update(t).where(t.c.env_id == agent.env_id, t.c.id == agent.id).values(**values))


def delete_agent(store: Store, env_id: str, agent_id: str) -> bool:
    """The agent and its conversations and records."""
    with store.engine.begin() as conn:
        gone = conn.execute(delete(schema.agents).where(schema.agents.c.env_id == env_id,
                                                        schema.agents.c.id == agent_id)).rowcount > 0
        for table in (schema.agent_conversations, schema.agent_records):
            conn.execute(delete(table).where(table.c.env_id == env_id, table.c.agent_id == agent_id))
    return gone


# Conversations.
def insert_conversation(store: Store, row: ConversationRow) -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(schema.agent_conversations).values(**{f.name: getattr(row, f.name) for f in fields(row)}))


def list_conversations(store: Store, env_id: str, agent_id: str, offset: int, limit: int
                       ) -> tuple[list[ConversationRow], int]:
    t = schema.agent_conversations
    where = (t.c.env_id == env_id, t.c.agent_id == agent_id)
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one()
        rows = conn.execute(select(t).where(*where).order_by(t.c.updated_at.desc(), t.c.id)
                            .offset(offset).limit(limit))
        return [ConversationRow(**r._mapping) for r in rows], int(total)


def rename_conversation(store: Store, env_id: str, agent_id: str, conversation_id: str, title: str,
                        now: float) -> bool:
    t = schema.agent_conversations
    with store.engine.begin() as conn:
        return conn.execute(update(t).where(t.c.env_id == env_id, t.c.agent_id == agent_id,
                                            t.c.id == conversation_id)
                            .values(title=title, updated_at=now)).rowcount > 0


def delete_conversation(store: Store, env_id: str, agent_id: str, conversation_id: str) -> bool:
    t, r = schema.agent_conversations, schema.agent_records
    with store.engine.begin() as conn:
        gone = conn.execute(delete(t).where(t.c.env_id == env_id, t.c.agent_id == agent_id,
                                            t.c.id == conversation_id)).rowcount > 0
        conn.execute(delete(r).where(r.c.env_id == env_id, r.c.agent_id == agent_id,
                                     r.c.conversation_id == conversation_id))
    return gone


# Records: the messages of a conversation (thread), in the order they were said.
def save_turn(store: Store, conversation: ConversationRow, records: list[RecordRow]) -> None:
    """A run's records, and its conversation made (first turn) or marked as just used, in one transaction."""
    t = schema.agent_conversations
    c = conversation
    with store.engine.begin() as conn:
        touched = conn.execute(update(t).where(t.c.env_id == c.env_id, t.c.agent_id == c.agent_id, t.c.id == c.id)
                               .values(updated_at=c.updated_at)).rowcount
        if not touched:
            conn.execute(insert(t).values(**{f.name: getattr(c, f.name) for f in fields(c)}))
        if records:
            conn.execute(insert(schema.agent_records), [{f.name: getattr(r, f.name) for f in fields(r)}
                                                        for r in records])


def thread_records(store: Store, env_id: str, agent_id: str, conversation_id: str, limit: int) -> list[RecordRow]:
    """The newest `limit` records of a conversation, oldest first."""
    t = schema.agent_records
    query = (select(t).where(t.c.env_id == env_id, t.c.agent_id == agent_id, t.c.conversation_id == conversation_id)
             .order_by(t.c.created_at.desc(), t.c.seq.desc()).limit(limit))
    with store.engine.connect() as conn:
        rows = [RecordRow(**r._mapping) for r in conn.execute(query)]
    return rows[::-1]


def list_records(store: Store, env_id: str, agent_id: str, conversation_id: str | None, newest_first: bool,
                 offset: int, limit: int) -> tuple[list[RecordRow], int]:
    t = schema.agent_records
    where = [t.c.env_id == env_id, t.c.agent_id == agent_id]
    if conversation_id is not None:
        where.append(t.c.conversation_id == conversation_id)
    order = (t.c.created_at.desc(), t.c.seq.desc()) if newest_first else (t.c.created_at, t.c.seq)
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one()
        rows = conn.execute(select(t).where(*where).order_by(*order).offset(offset).limit(limit))
        return [RecordRow(**r._mapping) for r in rows], int(total)
