"""The Agent API's send-message body, validated once into an `AgentRun`. One path takes two shapes:
AG-UI's RunAgentInput (`threadId, runId, messages, tools, context, state, forwardedProps`) and CloudBase's
legacy bot body (`msg, history, conversationId, files, searchEnable`). Messages come out in the canonical
(OpenAI chat) form the model service serves; errors are AGENT_INVALID_PARAM naming the client's field."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import orjson

from cbgate.errors import AgentInvalidParam
from cbgate.text import text_problem

AGUI = "ag-ui"
LEGACY = "legacy"
MAX_MESSAGES = 2048
MAX_TOOLS = 128
MAX_ID = 128  # threadId, runId, message and tool call ids, conversationId
MAX_TOOL_NAME = 64
MAX_CONTEXT_ITEMS = 64
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system", "tool": "tool"}
UI_ONLY_ROLES = frozenset({"activity", "reasoning"})  # AG-UI messages a UI keeps that no model reads


@dataclass(slots=True)
class AgentRun:
    shape: str  # AGUI or LEGACY: which body came, so the answer goes back in the same shape
    thread_id: str  # the conversation: AG-UI threadId, legacy conversationId (generated when absent)
    run_id: str
    messages: list[dict]  # canonical chat messages, oldest first, as the client sent them
    tools: list[dict] = field(default_factory=list)  # canonical (OpenAI) function tools the client declared
    context: list[dict] = field(default_factory=list)  # AG-UI context items {description, value}
    thread_given: bool = False  # the client named its thread (so stored turns of it may be prepended)
    model: str = ""  # the model the run's agent runs on: the legacy answer names it


def _invalid(name: str, why: str) -> AgentInvalidParam:
    return AgentInvalidParam(f"invalid parameter `{name}`: {why}")


def _id(body: dict, name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise _invalid(name, "is required")
        return None
    problem = text_problem(value, MAX_ID)
    if problem:
        raise _invalid(name, problem)
    return value


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def _text(value: Any, name: str) -> str:
    """Message content: a string, or AG-UI / OpenAI content parts of which the text parts are read."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        texts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise _invalid(name, "parts other than text ({\"type\": \"text\", \"text\": ...}) are not supported")
            texts.append(part["text"])
        return "".join(texts)
    raise _invalid(name, "must be a string or a list of text parts")


def _tool_calls(value: Any, where: str) -> list[dict]:
    if not isinstance(value, list):
        raise _invalid(where, "must be a list")
    calls = []
    for i, call in enumerate(value):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(call.get("id"), str):
            raise _invalid(f"{where}[{i}]", "must be {id, type: function, function: {name, arguments}}")
        arguments = fn.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments).decode()
        calls.append({"id": call["id"], "type": "function", "function": {"name": fn["name"], "arguments": arguments}})
    return calls


def _agui_message(message: Any, i: int) -> dict:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise _invalid(where, "must be an object")
    role = ROLES.get(message.get("role"))
    if role is None:
        raise _invalid(f"{where}.role", "must be user, assistant, system, developer or tool")
    out = {"role": role, "content": _text(message.get("content"), f"{where}.content")}
    if role == "assistant" and message.get("toolCalls"):
        out["tool_calls"] = _tool_calls(message["toolCalls"], f"{where}.toolCalls")
    if role == "tool":
        out["tool_call_id"] = _id(message, "toolCallId", required=True)
    return out


def _agui_tools(value: Any) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise _invalid("tools", f"must be a list of at most {MAX_TOOLS} tools")
    tools = []
    for i, tool in enumerate(value):
        if not isinstance(tool, dict) or text_problem(tool.get("name"), MAX_TOOL_NAME) or not tool.get("name"):
            raise _invalid(f"tools[{i}].name", f"must be a name of at most {MAX_TOOL_NAME} characters")
        parameters = tool.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise _invalid(f"tools[{i}].parameters", "must be a JSON schema object")
        description = tool.get("description") or ""
        if not isinstance(description, str):
            raise _invalid(f"tools[{i}].description", "must be a string")
        tools.append({"type": "function", "function": {"name": tool["name"], "description": description,
                                                       "parameters": parameters}})
    return tools


def _context(value: Any) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_CONTEXT_ITEMS or not all(
            isinstance(c, dict) and isinstance(c.get("description", ""), str) and isinstance(c.get("value"), str)
            for c in value):
        raise _invalid("context", f"must be a list of at most {MAX_CONTEXT_ITEMS} {{description, value}} strings")
    return [{"description": c.get("description", ""), "value": c["value"]} for c in value]


def _parse_agui(body: dict) -> AgentRun:
    messages = body.get("messages")
    if not isinstance(messages, list) or len(messages) > MAX_MESSAGES:
        raise _invalid("messages", f"must be a list of at most {MAX_MESSAGES} messages")
    thread = _id(body, "threadId")
    return AgentRun(AGUI, thread or new_id("thread-"), _id(body, "runId") or new_id("run-"),
                    [_agui_message(m, i) for i, m in enumerate(messages)
                     if not (isinstance(m, dict) and m.get("role") in UI_ONLY_ROLES)], _agui_tools(body.get("tools")),
                    _context(body.get("context")), thread_given=thread is not None)


def _parse_legacy(body: dict) -> AgentRun:
    msg = body.get("msg")
    if not isinstance(msg, str) or not msg:
        raise _invalid("msg", "must be a non-empty string")
    history = body.get("history") or []
    if not isinstance(history, list) or len(history) > MAX_MESSAGES:
        raise _invalid("history", f"must be a list of at most {MAX_MESSAGES} {{role, content}} messages")
    messages = []
    for i, item in enumerate(history):
        role = ROLES.get(item.get("role")) if isinstance(item, dict) else None
        if role not in ("user", "assistant", "system"):
            raise _invalid(f"history[{i}].role", "must be user, assistant or system")
        messages.append({"role": role, "content": _text(item.get("content"), f"history[{i}].content")})
    conversation = _id(body, "conversationId")
    return AgentRun(LEGACY, conversation or new_id("conv-"), new_id("run-"),
                    messages + [{"role": "user", "content": msg}], thread_given=conversation is not None)


def parse_send_message(body: dict) -> AgentRun:
    """Either shape: a body with `msg` is the legacy bot body, anything else must be AG-UI's."""
    if "msg" in body and "messages" not in body:
        return _parse_legacy(body)
    if "messages" not in body:
        raise _invalid("messages", "is required (AG-UI: {threadId, runId, messages, tools, ...}; "
                                   "or the legacy body {msg, history, conversationId})")
    return _parse_agui(body)
