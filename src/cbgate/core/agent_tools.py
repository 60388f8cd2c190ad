"""The gateway's own tools in an agent's run: the tools of the agent's MCP services, offered to its model as
`service__tool` and called server-side through the MCP gateway, for the key that runs the agent. So each
call is permitted or refused where every MCP client's is (core.permissions, the one decision, asked by
core.mcp_calls), admitted under the environment's limits and metered in the ledger (surface `mcp`); a
server that stalls, fails or answers garbage gives the model an error result within the service's timeout.

A run holds one MCP session per service (the gateway's, not a plain client's shared one), ended with the run.
"""
from __future__ import annotations

import asyncio
import logging

import orjson

from cbgate.core.auth import Principal
from cbgate.core.mcp_calls import McpCaller
from cbgate.core.mcp_gateway import McpAnswer, McpGateway
from cbgate.errors import AgentServerError, CloudBaseError, PermissionDenied
from cbgate.logs import printable
from cbgate.core.mcp_admin import McpServiceNotFound
from cbgate.protocol import mcp_tools
from cbgate.protocol.agent_stream import ToolResult
from cbgate.protocol.mcp_jsonrpc import read_message

log = logging.getLogger("cbgate.agents")

MAX_TOOLS = 128  # offered to one run's model, from all its services
MAX_PAGES = 10  # of one service's tools/list
CLOSE_SECONDS = 2.0  # a server's session is ended politely, but never held up for


class RunTools:
    """One run's MCP sessions (service -> session token) and the tools they offer its model."""

    def __init__(self, gateway: McpGateway, principal: Principal, request_id: str, agent_id: str | None = None):
        self.gateway = gateway
        self.principal = principal
        self.request_id = request_id
        self.agent_id = agent_id  # on the ledger records of its calls
        self.services: list[str] = []  # the agent's
        self.sessions: dict[str, str] = {}  # of the services this key may use
        self.versions: dict[str, str] = {}  # service -> the protocol version its server agreed to
        self.offered: dict[str, tuple[str, str]] = {}  # function name -> (service, tool)
        self.definitions: list[dict] = []  # the offered tools as OpenAI function tools
        self._ids = 0

    def _caller(self, service: str) -> McpCaller:
        """Asked afresh for every message: a grant revoked or a service switched off mid-run applies at once."""
        return self.gateway.service_caller(self.principal, service, self.request_id, self.agent_id)

    def _headers(self, service: str) -> dict[str, str]:
        headers = {"accept": "application/json", "content-type": "application/json"}
        if service in self.versions:
            headers["mcp-protocol-version"] = self.versions[service]
        return headers

    async def _send(self, service: str, message: dict) -> dict | None:
        """One message to the service in this run's session; the answer to a request (a JSON-RPC result or
        error), None for a notification. The server's failures come back as JSON-RPC errors (never a hang)."""
        caller = self._caller(service)  # refused here if the key may no longer use the service
        token = self.sessions.get(service)
        if token is None:
            raise PermissionDenied(f"MCP service {service} was not open to this run")
        answer = await self.gateway.post(caller, [read_message(message)], False, self._headers(service), token,
                                         stream_ok=False)
        body = answer.body if isinstance(answer, McpAnswer) else None
        if isinstance(body, list):  # the answer and, around it, messages of the server's own
            body = next((m for m in body if m.get("id") == message.get("id") and "method" not in m), None)
        return body if "id" in message else None

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    async def open(self, services: list[str], taken: set[str]) -> None:
        """Sessions with the agent's services and the tools this key may call there (tools/list as the key
        sees it), all at once. A service the key may not use, switched off or gone offers nothing; one whose
        server fails refuses the run (AGENT_SERVER_ERR) before it starts."""
        self.services = list(services)
        found = await asyncio.gather(*(self._list(s) for s in services), return_exceptions=True)
        failure = next((f for f in found if isinstance(f, BaseException)), None)
        if failure is not None:
            raise failure
        for service, tools in zip(services, found):
            for tool in tools:
                name = mcp_tools.function_name(service, tool["name"])
                if name is None or name in taken or name in self.offered or len(self.offered) >= MAX_TOOLS:
                    continue
                self.offered[name] = (service, tool["name"])
                self.definitions.append(mcp_tools.function_tool(name, tool))

    async def _list(self, service: str) -> list[dict]:
        p = self.principal
        try:
            self._caller(service)
        except (PermissionDenied, McpServiceNotFound) as refused:
            log.info("agent run %s offers no tools of MCP service %s: %s", self.request_id, service, refused.message)
            return []
        self.sessions[service] = self.gateway.sessions.open(p.env_id, p.key_id, service, None).token
        try:
            return await self._start(service)
        except AgentServerError:
            raise
        except CloudBaseError as err:  # the server's own HTTP refusal, say: the run cannot use the service
            raise AgentServerError(f"MCP service {service} failed the agent's session: {err.message}") from None

    async def _start(self, service: str) -> list[dict]:
        started = await self._send(service, mcp_tools.initialize(self._next_id()))
        result = _result(started, service, "initialize")
        if isinstance(result.get("protocolVersion"), str):
            self.versions[service] = result["protocolVersion"]
        await self._send(service, mcp_tools.INITIALIZED)
        tools, cursor = [], None
        for _ in range(MAX_PAGES):
            listed = _result(await self._send(service, mcp_tools.request(
                self._next_id(), "tools/list", {"cursor": cursor} if cursor else None)), service, "tools/list")
            tools += [t for t in listed.get("tools") or () if isinstance(t, dict) and isinstance(t.get("name"), str)]
            cursor = listed.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
        return tools

    def serves(self, name: str) -> bool:
        """Whether a call the model made is the gateway's to run: a tool it was offered, or one named like a
        tool of the agent's services (then refused or answered where every MCP call is, never the client's)."""
        split = mcp_tools.split_name(name)
        return name in self.offered or (split is not None and split[0] in self.services)

    async def call_all(self, calls: list[dict]) -> list[ToolResult]:
        """The round's calls of the gateway's tools, at once; each result in the order of the calls."""
        return list(await asyncio.gather(*(self._call(c) for c in calls)))

    async def _call(self, call: dict) -> ToolResult:
        name, raw = call["function"]["name"], call["function"]["arguments"] or "{}"
        service, tool = self.offered.get(name) or mcp_tools.split_name(name)
        try:
            arguments = orjson.loads(raw)
        except orjson.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            return ToolResult(call["id"], "error: the arguments must be a JSON object", True)
        try:
            answer = await self._send(service, mcp_tools.request(self._next_id(), "tools/call",
                                                                 {"name": tool, "arguments": arguments}))
        except CloudBaseError as err:  # the service is gone, switched off or not this key's
            log.warning("agent run %s: MCP service %s refused tool %s: %s", self.request_id, service,
                        printable(tool, 128), err.message)
            return ToolResult(call["id"], f"error: {err.message}", True)
        if answer is None:
            return ToolResult(call["id"], "error: the MCP server did not answer this call", True)
        content, failed = mcp_tools.result_text(answer)
        return ToolResult(call["id"], content, failed)

    async def close(self) -> None:
        """End the run's sessions: the gateway's at once, the servers' with a DELETE that may not hold it up."""
        sessions, self.sessions = self.sessions, {}
        for service, token in sessions.items():
            try:
                async with asyncio.timeout(CLOSE_SECONDS):
                    await self.gateway.end_session(self._caller(service), self._headers(service), token)
            except (CloudBaseError, TimeoutError):
                self.gateway.sessions.close(token)


def _result(answer: dict | None, service: str, method: str) -> dict:
    """The result of a request the run cannot do without; the server's failure refuses the run."""
    if isinstance(answer, dict) and isinstance(answer.get("result"), dict):
        return answer["result"]
    error = answer.get("error") if isinstance(answer, dict) else None
    said = error.get("message") if isinstance(error, dict) else "no answer"
    raise AgentServerError(f"MCP service {service} failed the agent's {method}: {said}")
