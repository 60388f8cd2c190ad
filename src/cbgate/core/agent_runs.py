"""Runs of the agents the gateway runs itself: each model round of a run is one call of the model service
(so admission, fallback, the model switch and the ledger apply as to any chat request, labelled surface
`agent` with the agent's id), with the agent's instructions first and the conversation's stored turns before
a turn that came without them. Tools the client declared go to the model, and its calls of them end the run
for the client to answer; the tools of the agent's MCP services the gateway calls itself (core.agent_loop).
The run's messages and answer become the conversation's records once it finished whole."""
from __future__ import annotations

import asyncio
import os
import time
from typing import Awaitable, Callable

from cbgate.core.auth import Principal
from cbgate.errors import AgentInvalidParam, AgentNotFound, ModelParamInvalid, ModelParamRequired
from cbgate.protocol.agent_request import AgentRun
from cbgate.protocol.agent_stream import RunAnswer
from cbgate.protocol.chat_request import ChatRequest, parse_chat_request
from cbgate.store import agents as stored
from cbgate.store.agents import AgentRow, ConversationRow, RecordRow
from cbgate.store.db import Store

THREAD_REPLAY = 100  # stored records a turn sent without its history is given (the newest ones)
TITLE_LENGTH = 64
AGENT_SURFACE = "agent"


def context_message(run: AgentRun) -> list[dict]:
    """AG-UI `context` items as one system message (the model has no other place for them)."""
    if not run.context:
        return []
    lines = [f"- {c['description']}: {c['value']}" if c["description"] else f"- {c['value']}" for c in run.context]
    return [{"role": "system", "content": "Context for this conversation:\n" + "\n".join(lines)}]


def sent_alone(run: AgentRun) -> bool:
    """The client sent only new messages of a thread it named (no assistant turn or tool result): the
    thread's stored turns come first, so the model sees the conversation so far."""
    return run.thread_given and not any(m["role"] in ("assistant", "tool") for m in run.messages)


def new_messages(run: AgentRun) -> list[dict]:
    """What this run adds to the conversation: the messages after the last assistant turn it was sent."""
    last = max((i for i, m in enumerate(run.messages) if m["role"] == "assistant"), default=-1)
    return [m for m in run.messages[last + 1:] if m["role"] in ("user", "tool")]


def _record(agent: AgentRow, run: AgentRun, role: str, content: str, now: float, seq: int) -> RecordRow:
    return RecordRow(id="record-" + os.urandom(12).hex(), env_id=agent.env_id, agent_id=agent.id,
                     conversation_id=run.thread_id, role=role, content=content, created_at=now, seq=seq)


def _validated(body: dict, agent_id: str) -> ChatRequest:
    try:
        req = parse_chat_request(body)
    except (ModelParamInvalid, ModelParamRequired) as exc:
        raise AgentInvalidParam(exc.message) from None
    req.surface, req.agent_id = AGENT_SURFACE, agent_id
    return req


class AgentRunner:
    def __init__(self, store: Store):
        self.store = store

    async def agent(self, principal: Principal, agent_id: str) -> AgentRow:
        """The caller's environment's agent; another environment's reads as not found."""
        found = await asyncio.to_thread(stored.get_agent, self.store, principal.env_id, agent_id)
        if found is None:
            raise AgentNotFound(f"no agent {agent_id!r} in this environment")
        return found

    async def model_request(self, agent: AgentRow, run: AgentRun, stream: bool = True,
                            offered: list[dict] = ()) -> ChatRequest:
        """The run's first model call, validated like any chat request; `offered` are the gateway's own tools,
        beside the client's."""
        history: list[dict] = []
        if sent_alone(run):
            records = await asyncio.to_thread(stored.thread_records, self.store, agent.env_id, agent.id,
                                              run.thread_id, THREAD_REPLAY)
            history = [{"role": r.role, "content": r.content} for r in records if r.role in ("user", "assistant")]
        system = [{"role": "system", "content": agent.instructions}] if agent.instructions else []
        body = {"model": agent.model, "stream": stream,
                "messages": system + context_message(run) + history + run.messages}
        if stream:
            body["stream_options"] = {"include_usage": True}  # the answer's last event carries the run's usage
        if run.tools or offered:
            body["tools"] = run.tools + list(offered)
        return _validated(body, agent.id)

    @staticmethod
    def next_round(first: ChatRequest, said: list[dict]) -> ChatRequest:
        """A later model call of the run: the first one's, with what the rounds since added (the model's tool
        calls and the results of those the gateway ran)."""
        return _validated({**first.raw, "messages": first.messages + said}, first.agent_id)

    def recorder(self, agent: AgentRow, run: AgentRun) -> Callable[[RunAnswer | None], Awaitable[None]]:
        """Stores a finished run's turn: the messages it added and its answer, in the run's conversation."""
        async def record(answer: RunAnswer | None) -> None:
            now = time.time()
            said = new_messages(run)
            records = [_record(agent, run, m["role"], m["content"], now, i) for i, m in enumerate(said)]
            if answer is not None and (answer.text or not answer.tool_calls):
                records.append(_record(agent, run, "assistant", answer.text, now, len(records)))
            first_user = next((m["content"] for m in said if m["role"] == "user"), "") or run.thread_id
            conversation = ConversationRow(id=run.thread_id, env_id=agent.env_id, agent_id=agent.id,
                                           title=first_user[:TITLE_LENGTH], created_at=now, updated_at=now)
            await asyncio.to_thread(stored.save_turn, self.store, conversation, records)
        return record
