"""The admin API's agent routes (contributed to AdminRoutes): list, create, show, change and delete an
environment's agents, the same operations as `cbgate agent` (core/agent_admin.py)."""
from __future__ import annotations

from typing import Awaitable, Callable

from cbgate.core.admin import Admin
from cbgate.core.agent_admin import AgentSpec, agent_view
from cbgate.errors import InvalidParam

FIELDS = ("name", "model", "group", "instructions", "welcome", "introduction", "questions", "url", "mcp_services")


def agent_spec(body: dict) -> AgentSpec:
    """The fields an admin body may set (each validated by AgentAdmin); anything else is refused."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise InvalidParam(f"unknown field {unknown[0]!r}; an agent has {', '.join(FIELDS)}")
    return AgentSpec(**{name: body.get(name) for name in FIELDS})


class AgentRoutes:
    def __init__(self, admin: Admin, run: Callable[..., Awaitable]):
        self.admin = admin
        self.run = run  # runs an admin operation off the event loop

    def routes(self) -> list[tuple]:
        """(method, path template under /admin/v1, handler, changes env-level state), as AdminRoutes keeps them."""
        return [
            ("GET", "/envs/{env}/agents", self.list_agents, False),
            ("POST", "/envs/{env}/agents", self.create_agent, True),
            ("GET", "/envs/{env}/agents/{agent}", self.get_agent, False),
            ("PUT", "/envs/{env}/agents/{agent}", self.change_agent, True),
            ("DELETE", "/envs/{env}/agents/{agent}", self.delete_agent, True),
        ]

    async def list_agents(self, call):
        rows, _ = await self.run(self.admin.agents.list, call.params["env"])
        return 200, {"data": [agent_view(a) for a in rows]}

    async def create_agent(self, call):
        agent = await self.run(self.admin.agents.create, call.params["env"], agent_spec(await call.body()))
        return 201, agent_view(agent)

    async def get_agent(self, call):
        return 200, agent_view(await self.run(self.admin.agents.get, call.params["env"], call.params["agent"]))

    async def change_agent(self, call):
        body = await call.body()
        if not body:
            raise InvalidParam(f"send at least one of {', '.join(FIELDS)}")
        agent = await self.run(self.admin.agents.update, call.params["env"], call.params["agent"], agent_spec(body))
        return 200, agent_view(agent)

    async def delete_agent(self, call):
        agent = await self.run(self.admin.agents.delete, call.params["env"], call.params["agent"])
        return 200, {"id": agent.id, "deleted": True}
