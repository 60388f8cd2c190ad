"""The Agent API's rows of the route table: `/v1/aibot/...`, as CloudBase serves it. A run of an agent the
gateway runs itself is a loop of model calls through the model service and calls of its MCP tools
(core.agent_loop), rendered by the agent surface through the one stream pump; a fronted agent's run and
every other route under it go to its AG-UI server. Bots are created, changed and deleted with a server key;
a publishable key may list, read and run them."""
from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs

import orjson

from cbgate.core.agent_admin import AgentAdmin, AgentSpec
from cbgate.core.agent_front import AgentFront
from cbgate.core.agent_loop import AgentRuns
from cbgate.core.agent_runs import AgentRunner
from cbgate.core.auth import Principal
from cbgate.core.key_kinds import Right, may, require
from cbgate.core.model_service import ModelService
from cbgate.core.shutdown import ShutdownDeadline
from cbgate.errors import AgentInvalidParam, AgentNotFound, InvalidPath
from cbgate.http.exchange import Exchange, json_object
from cbgate.http.model_route import caller
from cbgate.http.route_table import Route
from cbgate.http.stream_pump import pump
from cbgate.protocol.agent_openai import OpenAIRunStream
from cbgate.protocol.agent_request import AgentRun, new_id
from cbgate.protocol.agent_stream import PassThroughStream
from cbgate.protocol.agent_surface import AGENT, bot_fields, bot_json, conversation_json, record_json
from cbgate.protocol.chat_request import parse_chat_request
from cbgate.protocol.chat_surface import CHAT
from cbgate.store import agents as stored
from cbgate.store.agents import KIND_URL, ConversationRow

BOTS = "/v1/aibot/bots"
FORWARDED = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_PAGE = 100


def _page(query: dict, size_name: str = "pageSize", number_name: str = "pageNumber") -> tuple[int, int]:
    """(offset, limit) from CloudBase's pageSize/pageNumber (or offset/limit) query."""
    def number(name: str, default: int, low: int, high: int) -> int:
        raw = query.get(name)
        if raw in (None, ""):
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise AgentInvalidParam(f"invalid parameter `{name}`: must be a whole number from {low} to {high}")
        return int(raw)
    if "limit" in query or "offset" in query:
        return number("offset", 0, 0, 10 ** 9), number("limit", 10, 1, MAX_PAGE)
    size = number(size_name, 10, 1, MAX_PAGE)
    return (number(number_name, 1, 1, 10 ** 9) - 1) * size, size


def _query(ex: Exchange) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(ex.scope.get("query_string", b"").decode("latin-1")).items()}


class AgentRoutes:
    def __init__(self, service: ModelService, runner: AgentRunner, runs: AgentRuns, front: AgentFront,
                 agents: AgentAdmin, max_body_bytes: int, deadline: ShutdownDeadline):
        self.service = service
        self.runner = runner
        self.runs = runs
        self.front = front
        self.agents = agents
        self.max_body_bytes = max_body_bytes
        self.deadline = deadline

    def rows(self) -> list[Route]:
        def row(pattern: str, methods: dict) -> Route:
            return Route(pattern, methods, AGENT.error_body, cors=True)
        one = BOTS + "/{agent}"
        return [row(BOTS, {"GET": self.list_bots, "POST": self.create_bot}),
                row(one, {"GET": self.get_bot, "PATCH": self.update_bot, "DELETE": self.delete_bot}),
                row(one + "/send-message", {"POST": self.send_message}),
                row(one + "/records", {"GET": self.records}),
                row(one + "/conversation", {"GET": self.conversations, "POST": self.create_conversation}),
                row(one + "/conversation/{conversation}", {"PATCH": self.rename_conversation,
                                                          "DELETE": self.delete_conversation}),
                row(one + "/openai/chat/completions", {"POST": self.openai_entry}),
                row("/v1/aibot/openai/chat/completions", {"POST": self.openai_entry}),
                row(one + "/{rest*}", {m: self.forward for m in FORWARDED})]

    # The caller and its agent.
    def _caller(self, ex: Exchange) -> Principal:
        return caller(ex, self.service, AGENT, None, self.max_body_bytes)

    async def _agent(self, ex: Exchange, agent_id: str):
        principal = self._caller(ex)
        return principal, await self.runner.agent(principal, agent_id)

    async def _body(self, ex: Exchange) -> dict:
        if ex.header(b"content-length") == "0":
            return {}
        return await ex.read_json_object(self.max_body_bytes)

    # Bots.
    async def list_bots(self, ex: Exchange, params: dict) -> None:
        principal = self._caller(ex)
        offset, limit = _page(_query(ex))
        rows, total = await asyncio.to_thread(self.agents.list, principal.env_id, offset, limit)
        full = may(principal.kind, Right.SEE_AGENT_CONFIG)
        await ex.reply_json({"botList": [bot_json(a, full) for a in rows], "total": total})

    async def get_bot(self, ex: Exchange, params: dict) -> None:
        principal, agent = await self._agent(ex, params["agent"])
        await ex.reply_json(bot_json(agent, may(principal.kind, Right.SEE_AGENT_CONFIG)))

    async def create_bot(self, ex: Exchange, params: dict) -> None:
        principal = self._caller(ex)
        require(principal.kind, Right.CHANGE_AGENTS, "creating an agent")
        spec = AgentSpec(**bot_fields(await self._body(ex)))
        agent = await asyncio.to_thread(self.agents.create, principal.env_id, spec)
        await ex.reply_json(bot_json(agent, True))

    async def update_bot(self, ex: Exchange, params: dict) -> None:
        principal, agent = await self._agent(ex, params["agent"])
        require(principal.kind, Right.CHANGE_AGENTS, "changing an agent")
        spec = AgentSpec(**bot_fields(await self._body(ex)))
        changed = await asyncio.to_thread(self.agents.update, principal.env_id, agent.id, spec)
        await ex.reply_json(bot_json(changed, True))

    async def delete_bot(self, ex: Exchange, params: dict) -> None:
        principal, agent = await self._agent(ex, params["agent"])
        require(principal.kind, Right.CHANGE_AGENTS, "deleting an agent")
        await asyncio.to_thread(self.agents.delete, principal.env_id, agent.id)
        await ex.reply_json({"botId": agent.id, "deleted": True})

    # Runs.
    async def send_message(self, ex: Exchange, params: dict) -> None:
        principal, agent = await self._agent(ex, params["agent"])
        raw = await ex.read_body(self.max_body_bytes)  # a fronted agent gets the body as its client sent it
        run = AGENT.parse(json_object(raw))
        ex.cancel_on_disconnect()
        if agent.kind == KIND_URL:
            stream = await self.front.open_run(principal, agent, run, raw, ex.request_id)
            return await pump(ex, stream, PassThroughStream(), self.deadline)
        run.model = agent.model
        self.service.check_group(principal, agent.group_name)
        loop = await self.runs.open(principal, agent, run, ex.request_id)
        await pump(ex, loop, AGENT.stream(run, ex.request_id), self.deadline, self.runner.recorder(agent, run))

    async def openai_entry(self, ex: Exchange, params: dict) -> None:
        """OpenAI chat completions against an agent: the path's agent, or `model` set to the agent's id."""
        principal = self._caller(ex)
        body = await ex.read_json_object(self.max_body_bytes)
        agent_id = params.get("agent") or body.get("model")
        if not isinstance(agent_id, str) or not agent_id:
            raise AgentInvalidParam("invalid parameter `model`: set it to the agent's id")
        agent = await self.runner.agent(principal, agent_id)
        if agent.kind == KIND_URL:
            raw = orjson.dumps(body)
            status, data, kind = await self.front.forward(principal, agent, "POST", "chat/completions", b"", raw,
                                                          "application/json", ex.request_id)
            return await ex.reply(status, data, [(b"content-type", kind.encode("latin-1"))])
        req = parse_chat_request({**body, "model": agent.model})
        run = AgentRun("openai", new_id("thread-"), new_id("run-"), req.messages, req.tools or [], model=agent.model)
        self.service.check_group(principal, agent.group_name)
        ex.cancel_on_disconnect()
        if not req.stream:
            answer = await self.runs.complete(principal, agent, run, ex.request_id)
            return await ex.reply_json({**answer, "model": agent.id})
        loop = await self.runs.open(principal, agent, run, ex.request_id)
        await pump(ex, loop, OpenAIRunStream(CHAT.stream(loop.first, ex.request_id)), self.deadline)

    # Records and conversations: the gateway's own for its agents, the server's for a fronted one.
    async def records(self, ex: Exchange, params: dict) -> None:
        principal, agent = await self._agent(ex, params["agent"])
        if agent.kind == KIND_URL:
            return await self._forward(ex, principal, agent, "records")
        query = _query(ex)
        offset, limit = _page(query)
        rows, total = await asyncio.to_thread(stored.list_records, self.runner.store, principal.env_id, agent.id,
                                              query.get("conversationId") or query.get("threadId") or None,
                                              query.get("sort") == "desc", offset, limit)
        await ex.reply_json({"recordList": [record_json(r) for r in rows], "total": total})

    async def conversations(self, ex: Exchange, params: dict) -> None:
        principal, agent = await self._agent(ex, params["agent"])
        if agent.kind == KIND_URL:
            return await self._forward(ex, principal, agent, "conversation")
        offset, limit = _page(_query(ex))
        rows, total = await asyncio.to_thread(stored.list_conversations, self.runner.store, principal.env_id,
                                              agent.id, offset, limit)
        await ex.reply_json({"data": [conversation_json(c) for c in rows], "total": total})

    async def create_conversation(self, ex: Exchange, params: dict) -> None:
        principal, agent = await self._agent(ex, params["agent"])
        if agent.kind == KIND_URL:
            return await self._forward(ex, principal, agent, "conversation")
        title = _title((await self._body(ex)).get("title"))
        now = time.time()
        row = ConversationRow(new_id("conv-"), principal.env_id, agent.id, title or "New conversation", now, now)
        await asyncio.to_thread(stored.save_turn, self.runner.store, row, [])
        await ex.reply_json(conversation_json(row))

    async def rename_conversation(self, ex: Exchange, params: dict) -> None:
        principal, agent = await self._agent(ex, params["agent"])
        if agent.kind == KIND_URL:
            return await self._forward(ex, principal, agent, f"conversation/{params['conversation']}")
        title = _title((await self._body(ex)).get("title"))
        if not title:
            raise AgentInvalidParam("invalid parameter `title`: send the conversation's new title")
        done = await asyncio.to_thread(stored.rename_conversation, self.runner.store, principal.env_id, agent.id,
                                       params["conversation"], title, time.time())
        if not done:
            raise AgentNotFound(f"no conversation {params['conversation']!r} of agent {agent.id!r}")
        await ex.reply_json({"conversationId": params["conversation"], "title": title})

    async def delete_conversation(self, ex: Exchange, params: dict) -> None:
        principal, agent = await self._agent(ex, params["agent"])
        if agent.kind == KIND_URL:
            return await self._forward(ex, principal, agent, f"conversation/{params['conversation']}")
        done = await asyncio.to_thread(stored.delete_conversation, self.runner.store, principal.env_id, agent.id,
                                       params["conversation"])
        if not done:
            raise AgentNotFound(f"no conversation {params['conversation']!r} of agent {agent.id!r}")
        await ex.reply_json({"conversationId": params["conversation"], "deleted": True})

    # Everything else under a fronted agent.
    async def forward(self, ex: Exchange, params: dict) -> None:
        rest = params["rest"]  # never empty: the table gives the agent's own path to its own row
        principal, agent = await self._agent(ex, params["agent"])
        if agent.kind != KIND_URL:
            raise InvalidPath(f"no such path: {ex.scope['path']} (agent {agent.id} is run by the gateway, which "
                              "serves send-message, records, conversation and openai/chat/completions)")
        await self._forward(ex, principal, agent, "/".join(rest))

    async def _forward(self, ex: Exchange, principal: Principal, agent, tail: str) -> None:
        body = await ex.read_body(self.max_body_bytes)
        status, data, kind = await self.front.forward(principal, agent, ex.scope["method"], tail,
                                                      ex.scope.get("query_string", b""), body,
                                                      ex.header(b"content-type"), ex.request_id)
        await ex.reply(status, data, [(b"content-type", kind.encode("latin-1"))])


def _title(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 256:
        raise AgentInvalidParam("invalid parameter `title`: must be a string of at most 256 characters")
    return value
