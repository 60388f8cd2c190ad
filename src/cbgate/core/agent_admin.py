"""Agents as env-level state: create, list, show, change and delete, shared by the CLI, the admin API and
the Agent API's own bot routes, so that all of them validate an agent the same way."""
from __future__ import annotations

import os
import string
import time
from datetime import datetime, timezone
from dataclasses import dataclass, replace
from typing import Callable

from cbgate.core.permissions import SERVICE_NAME
from cbgate.core.resolve import CATALOG_GROUP
from cbgate.errors import AgentNotFound, InvalidParam
from cbgate.providers.netguard import EgressPolicy, EgressRefused, InvalidUpstreamURL
from cbgate.store import agents as stored
from cbgate.store import mcp as stored_mcp
from cbgate.store.agents import KIND_MODEL, KIND_URL, AgentRow
from cbgate.store.db import Store, StoreConflict
from cbgate.text import text_problem

MAX_NAME = 128
MAX_MODEL = 128
MAX_GROUP = 64
MAX_TEXT = 32 * 1024  # instructions; welcome and introduction get less
MAX_SHORT_TEXT = 4096
MAX_QUESTIONS = 10
MAX_QUESTION = 512
MAX_URL = 2048
MAX_MCP_SERVICES = 16
_ALPHABET = string.ascii_lowercase + string.digits


def new_agent_id() -> str:
    return "agent-" + "".join(_ALPHABET[b % len(_ALPHABET)] for b in os.urandom(12))


def _name(value: object, what: str, limit: int) -> str:
    problem = text_problem(value, limit)
    if problem or not value:
        raise InvalidParam(f"{what} {problem or 'may not be empty'}")
    return value


def _text(value: object, what: str, limit: int) -> str | None:
    """Free text (instructions, a welcome): newlines and tabs are fine, other control characters are not."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParam(f"{what} must be a string")
    problem = text_problem(value.replace("\n", " ").replace("\t", " ").replace("\r", " "), limit)
    if problem:
        raise InvalidParam(f"{what} {problem}")
    return value


def _questions(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_QUESTIONS:
        raise InvalidParam(f"recommended questions must be a list of at most {MAX_QUESTIONS} strings")
    return [_name(q, "a recommended question", MAX_QUESTION) for q in value]


@dataclass(slots=True)
class AgentSpec:
    """What a create or an update says; None leaves a field as it is (an update) or unset (a create)."""
    name: str | None = None
    model: str | None = None
    group: str | None = None
    instructions: str | None = None
    welcome: str | None = None
    introduction: str | None = None
    questions: list[str] | None = None
    url: str | None = None
    mcp_services: list[str] | None = None  # the env's MCP services whose tools its runs call; [] for none


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def agent_view(agent: AgentRow) -> dict:
    """An agent as the CLI and the admin API show it."""
    return {"id": agent.id, "env": agent.env_id, "name": agent.name, "kind": agent.kind, "model": agent.model,
            "group": agent.group_name, "url": agent.url, "instructions": agent.instructions,
            "welcome": agent.welcome, "introduction": agent.introduction, "questions": agent.questions or [],
            "mcp_services": agent.mcp_services or [], "created_at": _iso(agent.created_at),
            "updated_at": _iso(agent.updated_at)}


class AgentAdmin:
    def __init__(self, store: Store, settings, require_env: Callable[[str], None],
                 list_models: Callable[[str, str], list[tuple[str, str, bool]]]):
        self.store = store
        self.policy = EgressPolicy.parse(settings.env_vars.get("CBGATE_UPSTREAM_ALLOW"))
        self.require_env = require_env
        self.list_models = list_models  # (env, group) -> (group, model, enabled): what an agent may run on

    def _check_url(self, url: object) -> str:
        """An http(s) URL the egress policy lets us reach (checked again at every connect)."""
        if not isinstance(url, str) or len(url) > MAX_URL:
            raise InvalidParam(f"url must be an http:// or https:// URL of at most {MAX_URL} characters")
        try:
            target = self.policy.check_literal(url)
        except InvalidUpstreamURL as exc:
            raise InvalidParam(f"url must be an http:// or https:// URL with a host: {exc}") from None
        except EgressRefused as exc:
            raise InvalidParam(f"url: {exc}") from None
        if target.url.query_string or target.url.fragment:
            raise InvalidParam("url may not carry a query or a fragment")
        return url.rstrip("/")

    def _check_model(self, env_id: str, group: str, model: str) -> None:
        known = {m for _, m, _ in self.list_models(env_id, group)}
        if model not in known:
            raise InvalidParam(f"model {model!r} is not in group {group!r} of environment {env_id!r} "
                               f"(`cbgate model list --env {env_id}` shows them)")

    def _check_services(self, env_id: str, names: object) -> list[str]:
        """MCP services of this environment, each named once. Which of their tools a run may call is decided
        when it calls them, for the key that runs it (core.permissions), never here."""
        if names is None:
            return []
        if not isinstance(names, list) or len(names) > MAX_MCP_SERVICES:
            raise InvalidParam(f"mcp_services must be a list of at most {MAX_MCP_SERVICES} MCP service names")
        known = {row.name for row in stored_mcp.list_services(self.store, env_id)}
        for name in names:
            if not isinstance(name, str) or not SERVICE_NAME.match(name):
                raise InvalidParam(f"MCP service name {ascii(name)[:80]} is not valid")
            if name not in known:
                raise InvalidParam(f"environment {env_id!r} has no MCP service {name!r} (`cbgate mcp list --env "
                                   f"{env_id}` shows them)")
        if len(set(names)) != len(names):
            raise InvalidParam("mcp_services names a service twice")
        return list(names)

    def _validated(self, env_id: str, agent: AgentRow) -> AgentRow:
        _name(agent.name, "agent name", MAX_NAME)
        agent.instructions = _text(agent.instructions, "instructions", MAX_TEXT)
        agent.welcome = _text(agent.welcome, "welcome message", MAX_SHORT_TEXT)
        agent.introduction = _text(agent.introduction, "introduction", MAX_SHORT_TEXT)
        agent.questions = _questions(agent.questions)
        if agent.kind == KIND_URL:
            if agent.mcp_services:
                raise InvalidParam("a fronted agent (--url) runs its own tools; MCP services are for agents the "
                                   "gateway runs on a model")
            agent.url = self._check_url(agent.url)
            agent.model = agent.group_name = None
            return agent
        agent.mcp_services = self._check_services(env_id, agent.mcp_services)
        if not agent.model:
            raise InvalidParam("an agent needs a model (--model) it runs on, or the url (--url) of an AG-UI "
                               "server it fronts")
        _name(agent.model, "model", MAX_MODEL)
        _name(agent.group_name, "group", MAX_GROUP)
        self._check_model(env_id, agent.group_name, agent.model)
        return agent

    def create(self, env_id: str, spec: AgentSpec) -> AgentRow:
        self.require_env(env_id)
        if spec.url is not None and (spec.model is not None or spec.group is not None):
            raise InvalidParam("an agent either runs on a model (--model) or fronts a url (--url), not both")
        now = time.time()
        agent = AgentRow(id=new_agent_id(), env_id=env_id, name=spec.name, kind=KIND_URL if spec.url else KIND_MODEL,
                         model=spec.model, group_name=spec.group or CATALOG_GROUP, instructions=spec.instructions,
                         welcome=spec.welcome, introduction=spec.introduction, questions=spec.questions,
                         url=spec.url, created_at=now, updated_at=now, mcp_services=spec.mcp_services)
        try:
            stored.insert_agent(self.store, self._validated(env_id, agent))
        except StoreConflict as exc:
            raise InvalidParam(str(exc)) from None
        return agent

    def list(self, env_id: str, offset: int = 0, limit: int | None = None) -> tuple[list[AgentRow], int]:
        self.require_env(env_id)
        return stored.list_agents(self.store, env_id, offset, limit)

    def get(self, env_id: str, agent_id: str, by_name: bool = False) -> AgentRow:
        self.require_env(env_id)
        found = (stored.find_agent if by_name else stored.get_agent)(self.store, env_id, agent_id)
        if found is None:
            raise AgentNotFound(f"no agent {agent_id!r} in environment {env_id!r}")
        return found

    def update(self, env_id: str, agent_id: str, spec: AgentSpec, by_name: bool = False) -> AgentRow:
        current = self.get(env_id, agent_id, by_name)
        if spec.url is not None and spec.model is not None:
            raise InvalidParam("an agent either runs on a model or fronts a url, not both")
        changed = replace(current, questions=list(current.questions or []),
                          mcp_services=list(current.mcp_services or []), updated_at=time.time())
        for field, value in (("name", spec.name), ("instructions", spec.instructions), ("welcome", spec.welcome),
                             ("introduction", spec.introduction), ("questions", spec.questions),
                             ("mcp_services", spec.mcp_services)):
            if value is not None:
                setattr(changed, field, value)
        if spec.url is not None:
            changed.kind, changed.url = KIND_URL, spec.url
            changed.mcp_services = spec.mcp_services or []
        if spec.model is not None or spec.group is not None:
            changed.kind, changed.url = KIND_MODEL, None
            changed.model = spec.model or current.model
            changed.group_name = spec.group or current.group_name or CATALOG_GROUP
        try:
            stored.replace_agent(self.store, self._validated(env_id, changed))
        except StoreConflict as exc:
            raise InvalidParam(str(exc)) from None
        return changed

    def delete(self, env_id: str, agent_id: str, by_name: bool = False) -> AgentRow:
        agent = self.get(env_id, agent_id, by_name)
        stored.delete_agent(self.store, env_id, agent.id)
        return agent
