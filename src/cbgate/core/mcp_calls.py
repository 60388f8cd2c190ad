"""Metering one MCP tool call: permitted or refused (in core.permissions, the one decision), admitted under the
environment's limits, journalled before it is forwarded, and recorded however it ends: in the ledger (surface
`mcp`, the service as the group, the tool as the model, its outcome and duration) and in /metrics."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from cbgate.core.auth import Principal
from cbgate.core.key_kinds import limit_scope
from cbgate.core.metering import CLIENT_CLOSED_STATUS, INTERRUPTED, Metering
from cbgate.core.permissions import KeyPermissions, require_tool
from cbgate.errors import CloudBaseError, PermissionDenied, ServiceUnavailable
from cbgate.limits.base import Limiter
from cbgate.logs import printable
from cbgate.store.spool import SpoolUnwritable
from cbgate.store.usage import MCP_SURFACE, UsageRecord

log = logging.getLogger("cbgate.mcp")

# How a call ended: the outcome label of the ledger and of cbgate_mcp_tool_calls_total.
OK, TOOL_ERROR, ERROR, REFUSED, LIMITED = "ok", "tool_error", "error", "refused", "limited"
TIMEOUT, FAILED, DISCONNECTED = "timeout", "failed", "disconnected"


@dataclass(frozen=True, slots=True)
class McpCaller:
    """Who is calling which service, as dispatch decides on it."""
    principal: Principal
    service: str
    permissions: KeyPermissions
    request_id: str  # the gateway's, of the HTTP request the calls came in
    agent_id: str | None = None  # the agent whose run makes the calls (the gateway calls for it), if any


class ToolCall:
    """One tools/call, from its permission check to its record; `finish` runs exactly once."""

    def __init__(self, metering: Metering, caller: McpCaller, tool: str, seq: int):
        self.metering = metering
        self.caller = caller
        p = caller.principal
        self.record = UsageRecord(request_id=f"{caller.request_id}-{seq}", env_id=p.env_id, key_id=p.key_id,
                                  group_name=caller.service, model=tool[:128], surface=MCP_SURFACE,
                                  created_at=time.time(), agent_id=caller.agent_id)
        self.started = time.monotonic()
        self.ticket = None
        self.done = False
        self.begun = False

    async def admit(self, limiter: Limiter | None, snapshot) -> None:
        """Permitted (the one decision), admitted and journalled, or a CloudBaseError (the call is recorded)."""
        p = self.caller.principal
        try:
            require_tool(self.caller.permissions, p.kind, self.caller.service, self.record.model)
            limits = snapshot.limits_for(p.env_id, p.kind)
            if limiter is not None and limits.any:
                scope = limit_scope(p.env_id, p.kind)
                self.ticket = await limiter.admit(scope, p.env_id, limits, 0)
            self._journal()
        except CloudBaseError as err:
            self.finish(REFUSED if isinstance(err, PermissionDenied) else LIMITED, err)
            raise
        self.metering.metrics.admitted(p.env_id)

    def _journal(self) -> None:
        ledger = self.metering.ledger
        if ledger is None:
            return
        r = self.record
        try:
            ledger.begin(UsageRecord(r.request_id, r.env_id, r.key_id, r.group_name, r.model, surface=r.surface,
                                     status=500, code=INTERRUPTED, created_at=r.created_at, agent_id=r.agent_id))
            self.begun = True
        except SpoolUnwritable:
            if not self.metering.answer_unbilled:
                raise ServiceUnavailable("the gateway cannot record usage right now; try again shortly") from None

    def finish(self, outcome: str, error: CloudBaseError | None = None) -> None:
        if self.done:
            return
        self.done = True
        r = self.record
        r.outcome = outcome
        r.latency_ms = round((time.monotonic() - self.started) * 1000, 3)
        if error is not None:
            r.status, r.code = error.status, error.code
        elif outcome == DISCONNECTED:
            r.status, r.disconnected, r.code = CLIENT_CLOSED_STATUS, True, "CLIENT_CLOSED"
        elif outcome == ERROR:
            r.code = "MCP_TOOL_ERROR"  # the server answered the call with a JSON-RPC error
        if self.ticket is not None:
            self.ticket.finish(0)
        if outcome == REFUSED:  # a key reaching past its grants: worth an operator's eye
            log.warning("refused MCP tool call: env=%s key=%s service=%s tool=%s request=%s", r.env_id, r.key_id,
                        r.group_name, printable(r.model, 128), self.caller.request_id)
        self.metering.metrics.mcp_call(r.env_id, r.group_name, r.model, outcome)
        ledger = self.metering.ledger
        if ledger is not None and (self.begun or outcome in (REFUSED, LIMITED) or self.metering.answer_unbilled):
            ledger.finish(r)
        if self.metering.on_record is not None:
            self.metering.on_record(r)


def outcome_of(response: dict) -> str:
    """How a server's answer to a tools/call ended."""
    if "error" in response:
        return ERROR
    result = response.get("result")
    return TOOL_ERROR if isinstance(result, dict) and result.get("isError") is True else OK
