"""Agents the gateway fronts: an AG-UI server at a tenant's URL, reached like any tenant upstream (the
guarded session: the egress policy at every connect, no redirects). A run is admitted under the
environment's limits and metered as one ledger record (surface `agent`, the agent's id) however it ends;
its events pass through byte for byte. A server that cannot be reached, answers an error, sends nothing
for `idle` seconds or breaks off ends the run with RUN_ERROR (AGENT_SERVER_ERR), never a hang. Other
routes under the agent (speech-to-text, records, ...) are forwarded as they are, unmetered.

The caller's key never leaves the gateway: the agent server gets who called in `x-cloudbase-credentials`
(JSON: env, key id, key kind, request id)."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import AsyncIterator

import aiohttp
import orjson

from cbgate.core.auth import Principal
from cbgate.core.metering import MeteredStream, Metering
from cbgate.errors import AgentServerError
from cbgate.protocol.agent_request import AgentRun
from cbgate.protocol.chat_request import ChatRequest
from cbgate.providers.netguard import EgressRefused
from cbgate.providers.upstream_http import UpstreamClient, error_reason
from cbgate.text import for_terminal

log = logging.getLogger("cbgate.agents")

FRONTED_GROUP = "agent"  # the ledger's group for a fronted agent's run (its model is the agent's id)
MAX_FORWARDED_BODY = 16 * 1024 * 1024
ENDINGS = (b'"RUN_FINISHED"', b'"RUN_ERROR"')
CARRY = 32  # bytes kept from one read to find an ending split across two


@dataclass(frozen=True, slots=True)
class FrontTimeouts:
    connect: float = 10.0
    first_byte: float = 60.0  # until the server's status line
    idle: float = 60.0  # between two reads of a run's stream: a stall past it ends the run
    total: float = 60.0  # a forwarded non-run request, whole


def credentials(principal: Principal, request_id: str) -> str:
    return orjson.dumps({"env": principal.env_id, "keyId": principal.key_id, "keyKind": principal.kind,
                         "requestId": request_id}).decode()


def _failure(url: str, why: str) -> AgentServerError:
    return AgentServerError(f"the agent server at {for_terminal(url)} {why}")


class AgentFront:
    def __init__(self, upstream: UpstreamClient, metering: Metering, admit, timeouts: FrontTimeouts | None = None):
        self.upstream = upstream
        self.metering = metering
        self.admit = admit  # the model service's admission: (principal, request, meter) -> None or a 429
        self.timeouts = timeouts or FrontTimeouts()

    def _headers(self, principal: Principal, request_id: str, content_type: str | None, accept: str | None) -> dict:
        headers = {"x-cloudbase-credentials": credentials(principal, request_id), "x-request-id": request_id}
        if content_type:
            headers["content-type"] = content_type
        if accept:
            headers["accept"] = accept
        return headers

    async def _send(self, method: str, url: str, body: bytes, headers: dict) -> aiohttp.ClientResponse:
        session = self.upstream.session(guarded=True)
        try:
            async with asyncio.timeout(self.timeouts.first_byte):
                return await session.request(method, url, data=body or None, headers=headers, allow_redirects=False,
                                             timeout=aiohttp.ClientTimeout(sock_connect=self.timeouts.connect))
        except EgressRefused as exc:
            raise _failure(url, f"may not be reached: {exc}") from None
        except TimeoutError:
            raise _failure(url, f"sent no answer within {self.timeouts.first_byte:g}s") from None
        except aiohttp.ClientError as exc:
            raise _failure(url, f"could not be reached: {type(exc).__name__}") from None

    async def open_run(self, principal: Principal, agent, run: AgentRun, raw: bytes, request_id: str) -> MeteredStream:
        """POST the client's body to the server's /send-message and return its event stream, metered."""
        req = ChatRequest(model=agent.id, messages=run.messages, stream=True, surface="agent", agent_id=agent.id)
        meter = self.metering.start(principal, FRONTED_GROUP, req, request_id)
        url = agent.url + "/send-message"
        try:
            await self.admit(principal, req, meter)
            meter.serving(f"agent:{agent.url}"[:256])  # journalled: even a kill -9 of the gateway bills it
            response = await self._send("POST", url, raw, self._headers(principal, request_id, "application/json",
                                                                         "text/event-stream"))
            if response.status != 200 or "text/event-stream" not in response.headers.get("content-type", ""):
                raise await self._refusal(url, response)
        except BaseException as exc:
            meter.finish(exc)
            raise
        return MeteredStream(self._events(url, response), meter)

    async def _refusal(self, url: str, response: aiohttp.ClientResponse) -> AgentServerError:
        try:
            raw = await asyncio.wait_for(response.content.read(64 * 1024), 5.0)
        except (aiohttp.ClientError, TimeoutError):
            raw = b""
        finally:
            response.release()
        if response.status == 200:
            return _failure(url, f"answered {response.headers.get('content-type') or 'no content type'}, "
                                 "not an event stream")
        return _failure(url, f"answered {response.status}: {for_terminal(error_reason(raw))[:300]}")

    async def _events(self, url: str, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        """The server's bytes as they arrive; a stall, a break or an end without RUN_FINISHED/RUN_ERROR
        raises AGENT_SERVER_ERR, which the pump sends as the run's RUN_ERROR."""
        tail = b""
        ended = False
        try:
            while True:
                try:
                    async with asyncio.timeout(self.timeouts.idle):
                        data = await response.content.readany()
                except TimeoutError:
                    raise _failure(url, f"sent nothing for {self.timeouts.idle:g}s") from None
                except aiohttp.ClientError as exc:
                    raise _failure(url, f"broke off the run: {type(exc).__name__}") from None
                if not data:
                    break
                seen = tail + data
                ended = ended or any(mark in seen for mark in ENDINGS)
                tail = seen[-CARRY:]
                yield data
        finally:
            response.close()
        if not ended:
            raise _failure(url, "ended the run without RUN_FINISHED")

    async def forward(self, principal: Principal, agent, method: str, tail: str, query: bytes, body: bytes,
                      content_type: str | None, request_id: str) -> tuple[int, bytes, str]:
        """Any other route under the agent, passed to the server as it came: (status, body, content type)."""
        url = f"{agent.url}/{tail}" + (f"?{query.decode('latin-1')}" if query else "")
        response = await self._send(method, url, body, self._headers(principal, request_id, content_type, None))
        parts, size = [], 0
        try:
            async with asyncio.timeout(self.timeouts.total):
                while data := await response.content.readany():
                    size += len(data)
                    if size > MAX_FORWARDED_BODY:
                        raise _failure(url, f"answered more than {MAX_FORWARDED_BODY} bytes")
                    parts.append(data)
        except TimeoutError:
            raise _failure(url, f"did not finish its answer within {self.timeouts.total:g}s") from None
        except aiohttp.ClientError as exc:
            raise _failure(url, f"broke off its answer: {type(exc).__name__}") from None
        finally:
            response.close()
        data = b"".join(parts)
        return response.status, data, response.headers.get("content-type", "application/octet-stream")
