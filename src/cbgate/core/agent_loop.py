"""One run of an agent the gateway runs itself, as the stream the edge's one pump drains: model rounds over
the model service, and between them the calls of the gateway's own (MCP) tools.

Round after round: the model's stream goes out as it comes; if the model called tools of the agent's MCP
services, the round ends (`RoundEnd`), the gateway runs those calls (`ToolResult` each, whatever the server
did) and the next round gives the model their results. The run ends when a round calls none of them (or
calls a tool the client declared: the client answers it, as without MCP), and fails with a clear error when
the model is still calling tools after MAX_ROUNDS rounds. Each round is one model-service call (admission,
fallback, one ledger record); each tool call one MCP call (permission, admission, one ledger record);
/metrics counts the run once, however it ended.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import orjson

from cbgate.core.agent_runs import AgentRunner
from cbgate.core.agent_tools import RunTools
from cbgate.core.auth import Principal
from cbgate.core.mcp_gateway import McpGateway
from cbgate.core.metering import Meter, MeteredStream, StreamCut
from cbgate.core.model_service import ModelService
from cbgate.errors import AgentRequestLLMError, CloudBaseError
from cbgate.protocol.agent_request import AgentRun, new_id
from cbgate.protocol.agent_openai import run_usage, without_calls
from cbgate.protocol.agent_stream import RoundEnd, ToolResult, call_index, chunk_delta, tool_call_deltas
from cbgate.protocol.chat_request import ChatRequest
from cbgate.store.agents import AgentRow

MAX_ROUNDS = 8  # model rounds in one run
CLIENT_CLOSED = "CLIENT_CLOSED"


class RunMark:
    """What the shutdown deadline marks when it cuts the run (core.shutdown sets `cut`): passed on to the
    round in flight, so that its record says the gateway ended it."""

    def __init__(self):
        self._cut: StreamCut | None = None
        self.round: Meter | None = None

    @property
    def cut(self) -> StreamCut | None:
        return self._cut

    @cut.setter
    def cut(self, err: StreamCut) -> None:
        self._cut = err
        if self.round is not None:
            self.round.cut = err


class RoundCalls:
    """The tool calls and text of one model round, read from its chunks as they pass."""

    def __init__(self):
        self.text = ""
        self.calls: dict[int, dict] = {}  # index -> {id, type, function: {name, arguments}}

    def note(self, chunk):
        """Read a chunk; returns it, with an id given to a tool call that came without one (the client and the
        next round must name the call alike)."""
        delta, _ = chunk_delta(chunk)
        if isinstance(delta.get("content"), str):
            self.text += delta["content"]
        added = False
        for call in tool_call_deltas(delta):
            if not isinstance(call, dict):
                continue
            index = call_index(call, len(self.calls))
            fn = call.get("function") if isinstance(call.get("function"), dict) else {}
            known = self.calls.get(index)
            if known is None:
                if not isinstance(call.get("id"), str) or not call["id"]:
                    call["id"], added = new_id("call-"), True
                known = self.calls[index] = {"id": call["id"], "type": "function",
                                             "function": {"name": "", "arguments": ""}}
            if isinstance(fn.get("name"), str) and not known["function"]["name"]:
                known["function"]["name"] = fn["name"]
            if isinstance(fn.get("arguments"), str):
                known["function"]["arguments"] += fn["arguments"]
        if added:  # `delta` is a dict of this chunk (parsed, when it came as bytes): sent as changed
            return _with_delta(chunk, delta)
        return chunk


def _with_delta(chunk, delta: dict) -> dict:
    chunk = orjson.loads(chunk) if isinstance(chunk, bytes) else chunk
    return {**chunk, "choices": [{**chunk["choices"][0], "delta": delta}, *chunk["choices"][1:]]}


class AgentLoop:
    """The run's stream (a stream_pump Source): `start()` opens the first round, so a failure up to its first
    chunk is the client's JSON error; later failures end the stream with the surface's error event."""

    def __init__(self, service: ModelService, runner: AgentRunner, tools: RunTools, principal: Principal,
                 agent: AgentRow, run: AgentRun, first: ChatRequest, request_id: str):
        self.service = service
        self.runner = runner
        self.tools = tools
        self.principal = principal
        self.agent = agent
        self.run = run
        self.first = first
        self.request_id = request_id
        self.meter = RunMark()
        self.stream: MeteredStream | None = None
        self.outcome: str | None = None  # how the run ended, as /metrics labels it
        self._events = self._rounds()
        self._closed = False
        self._counted = False  # a round that failed to open counted the run (it ended there)

    async def _open(self, req: ChatRequest, n: int) -> None:
        """A round: a model-service call of its own (its own admission and record); a failure to open it ends
        the run, and its record counts the run."""
        rid = self.request_id if n == 1 else f"{self.request_id}-r{n}"
        try:
            self.stream = await self.service.open_stream(self.principal, self.agent.group_name, req, rid)
        except BaseException:
            self._counted = True
            raise
        self.stream.meter.run_ends = False  # opened: the run goes on past it, and is counted at its end
        self.meter.round = self.stream.meter

    async def start(self) -> AgentLoop:
        try:
            await self._open(self.first, 1)
        except BaseException:
            await self.tools.close()
            self._closed = True
            raise
        return self

    def __aiter__(self) -> AsyncIterator:
        return self._events

    async def _rounds(self) -> AsyncIterator:
        said: list[dict] = []
        try:
            for n in range(1, MAX_ROUNDS + 1):
                if n > 1:
                    await self._open(self.runner.next_round(self.first, said), n)
                calls = RoundCalls()
                # with no MCP service no call can be the gateway's: the batches go as they came, unread
                if self.tools.services:
                    async for batch in self.stream:
                        yield [calls.note(chunk) for chunk in batch]
                else:
                    async for batch in self.stream:
                        yield batch
                await self._end_round()
                made = list(calls.calls.values())
                ours = [c for c in made if self.tools.serves(c["function"]["name"])]
                if not ours:
                    break
                if n == MAX_ROUNDS:
                    raise too_many_rounds()
                yield RoundEnd()
                results = await self.tools.call_all(ours)
                for result in results:
                    yield result
                if len(ours) < len(made):  # it called the client's tools too: the client answers those
                    break
                said += next_messages(calls.text, made, results)
            self.outcome = "OK"
        except CloudBaseError as err:
            self.outcome = err.code
            raise
        except (GeneratorExit, asyncio.CancelledError):
            self.outcome = CLIENT_CLOSED
            raise
        except Exception:
            self.outcome = "SYS_ERR"
            raise

    async def _end_round(self) -> None:
        stream, self.stream, self.meter.round = self.stream, None, None
        if stream is not None:
            await stream.aclose()

    async def aclose(self) -> None:
        """Close the round in flight (recording it), the run's MCP sessions, and count the run: once."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._events.aclose()
            if self.stream is not None:
                await self.stream.aclose()  # records its error, or the client's leaving, or the cut
        finally:
            await self.tools.close()
            if not self._counted:
                outcome = self.meter.cut.code if self.meter.cut is not None else (self.outcome or CLIENT_CLOSED)
                self.service.metering.metrics.agent_run(self.principal.env_id, self.agent.id, outcome)


class AgentRuns:
    """Opens the runs of the agents the gateway runs itself: the agent's MCP tools as this key may call them,
    then the first model round (a stream, `open`), or the whole run answered at once (`complete`)."""

    def __init__(self, service: ModelService, runner: AgentRunner, gateway: McpGateway):
        self.service = service
        self.runner = runner
        self.gateway = gateway

    async def _tools(self, principal: Principal, agent: AgentRow, run: AgentRun, request_id: str) -> RunTools:
        tools = RunTools(self.gateway, principal, request_id, agent.id)
        try:
            await tools.open(list(agent.mcp_services or ()), {t["function"]["name"] for t in run.tools})
        except BaseException as exc:
            await tools.close()
            if isinstance(exc, CloudBaseError):  # the agent's MCP server failed: a run that failed, counted
                self._count(principal, agent, exc.code)
            raise
        return tools

    def _count(self, principal: Principal, agent: AgentRow, outcome: str) -> None:
        self.service.metering.metrics.agent_run(principal.env_id, agent.id, outcome)

    async def open(self, principal: Principal, agent: AgentRow, run: AgentRun, request_id: str) -> AgentLoop:
        tools = await self._tools(principal, agent, run, request_id)
        try:
            first = await self.runner.model_request(agent, run, offered=tools.definitions)
        except BaseException:
            await tools.close()
            raise
        return await AgentLoop(self.service, self.runner, tools, principal, agent, run, first, request_id).start()

    async def complete(self, principal: Principal, agent: AgentRow, run: AgentRun, request_id: str) -> dict:
        """The run as one chat completion (the OpenAI entry without a stream): its rounds as the stream's,
        the gateway's tool calls left out of the answer, the usage of all rounds."""
        tools = await self._tools(principal, agent, run, request_id)
        outcome = CLIENT_CLOSED
        try:
            first = await self.runner.model_request(agent, run, stream=False, offered=tools.definitions)
            answers, said, answered = [], [], set()
            for n in range(1, MAX_ROUNDS + 1):
                req = first if n == 1 else self.runner.next_round(first, said)
                rid = request_id if n == 1 else f"{request_id}-r{n}"
                answers.append(await self.service.complete(principal, agent.group_name, req, rid, run_ends=False))
                message = answer_message(answers[-1])
                made = _calls(message)
                ours = [c for c in made if tools.serves(c["function"]["name"])]
                if not ours:
                    break
                if n == MAX_ROUNDS:
                    raise too_many_rounds()
                results = await tools.call_all(ours)
                answered |= {c["id"] for c in ours}
                if len(ours) < len(made):
                    break
                said += next_messages(message.get("content") or "", made, results)
            outcome = "OK"
            return {**without_calls(answers[-1], answered), "usage": run_usage(answers)}
        except CloudBaseError as err:
            outcome = err.code
            raise
        except Exception:
            outcome = "SYS_ERR"
            raise
        finally:
            await tools.close()
            self._count(principal, agent, outcome)


def too_many_rounds() -> AgentRequestLLMError:
    return AgentRequestLLMError(f"the agent's model was still calling tools after {MAX_ROUNDS} rounds; the run "
                                "stops here")


def next_messages(text: str, made: list[dict], results: list[ToolResult]) -> list[dict]:
    """What a round adds for the next: the model's turn with its calls, then the results the gateway got."""
    return [{"role": "assistant", "content": text, "tool_calls": made}] + [
        {"role": "tool", "tool_call_id": r.call_id, "content": r.content} for r in results]


def answer_message(answer: dict) -> dict:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    return first.get("message") if isinstance(first.get("message"), dict) else {}


def _calls(message: dict) -> list[dict]:
    """The tool calls of a whole answer, each with an id and a function name (as the next round needs them)."""
    calls = []
    for call in message.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        arguments = fn.get("arguments") if isinstance(fn.get("arguments"), str) else ""
        calls.append({"id": call.get("id") if isinstance(call.get("id"), str) and call["id"] else new_id("call-"),
                      "type": "function", "function": {"name": fn["name"], "arguments": arguments}})
    return calls
