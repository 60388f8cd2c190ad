"""The Agent API (`/v1/aibot`) as a surface: the send-message body parsed once (either shape), its answer
rendered as AG-UI events or legacy bot objects, CloudBase's AGENT_* error envelope, and the wire shapes of
bots, records and conversations as CloudBase's bot module reads them."""
from __future__ import annotations

from datetime import datetime, timezone

from cbgate.errors import CloudBaseError, error_body
from cbgate.protocol.agent_request import AGUI, AgentRun, parse_send_message
from cbgate.protocol.agent_stream import AgUiStream, LegacyStream, agent_error_code
from cbgate.protocol.surface import Surface

CODES = {"INVALID_PARAM": "AGENT_INVALID_PARAM", "AI_MODEL_PARAM_INVALID": "AGENT_INVALID_PARAM"}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class AgentSurface(Surface[AgentRun]):
    name = "agent"

    def parse(self, body: dict) -> AgentRun:
        return parse_send_message(body)

    def stream(self, req: AgentRun, request_id: str):
        if req.shape == AGUI:
            return AgUiStream(req.thread_id, req.run_id)
        return LegacyStream(req.model, request_id)

    def error_body(self, err: CloudBaseError, request_id: str) -> dict:
        body = error_body(err, request_id)
        code = CODES.get(err.code) or agent_error_code(err)
        body["code"] = body["error"]["code"] = code
        return body


AGENT = AgentSurface()


def bot_json(agent, full: bool) -> dict:
    """A bot as `GET /v1/aibot/bots[/{id}]` shows it. `full` (a server key) adds its instructions and what
    it runs on; a publishable key, shipped in a web page, sees what a chat UI shows."""
    body = {"botId": agent.id, "name": agent.name, "introduction": agent.introduction or "",
            "welcomeMessage": agent.welcome or "", "avatar": "", "background": "",
            "isNeedRecommend": bool(agent.questions), "initQuestions": list(agent.questions or []),
            "type": agent.kind, "enable": True, "createTime": _iso(agent.created_at),
            "updateTime": _iso(agent.updated_at)}
    if full:
        body.update(agentSetting=agent.instructions or "", model=agent.model, group=agent.group_name,
                    url=agent.url, mcpServices=list(agent.mcp_services or []))
    return body


def record_json(record) -> dict:
    return {"recordId": record.id, "botId": record.agent_id, "conversation": record.conversation_id,
            "role": record.role, "content": record.content, "type": "text",
            "createTime": _iso(record.created_at)}


def conversation_json(conversation) -> dict:
    return {"conversationId": conversation.id, "botId": conversation.agent_id, "title": conversation.title,
            "createTime": _iso(conversation.created_at), "updateTime": _iso(conversation.updated_at)}


def bot_fields(body: dict) -> dict:
    """A bot create/update body (`botInfo`, as @cloudbase/ai's bot module sends it) as AgentSpec fields."""
    names = {"name": "name", "model": "model", "group": "group", "agentSetting": "instructions",
             "welcomeMessage": "welcome", "introduction": "introduction", "initQuestions": "questions", "url": "url",
             "mcpServices": "mcp_services"}
    return {ours: body[theirs] for theirs, ours in names.items() if body.get(theirs) is not None}
