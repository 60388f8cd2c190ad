"""What the OpenAI-compatible and Anthropic adapters share: the endpoint, the egress check, the
non-streaming call under its total timeout, and opening a stream."""
from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import orjson

from cbgate.errors import ModelRequestFailed, ModelRequestTimeout
from cbgate.providers.base import UNDECLARED, Capabilities, Inputs
from cbgate.providers.http1_conn import Response
from cbgate.providers.netguard import EgressRefused
from cbgate.providers.token_estimate import TokenEstimator
from cbgate.providers.upstream_errors import CLIENT_ERRORS, upstream_failure
from cbgate.providers.upstream_http import (REASON_SCAN, Endpoint, Timeouts, UpstreamClient, error_reason,
                                            object_reason)
from cbgate.providers.upstream_sse import EventReader


# What reading a malformed answer raises (a number where an object belongs, a count that is no count):
# the upstream's garbage, answered as its failure (502), never as ours (500).
UNREADABLE = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError)


@functools.lru_cache(maxsize=64)
def _late(total: float) -> str:
    return f"did not answer within {total:g}s"  # what running out of a call's total time says


class UpstreamAdapter:
    capabilities = Capabilities()

    def __init__(self, name: str, endpoint: Endpoint, client: UpstreamClient, estimator: TokenEstimator, *,
                 upstream_model: str | None = None, timeouts: Timeouts | None = None, inputs: Inputs = UNDECLARED):
        self.name = name
        self.inputs = inputs  # what its operator declared it reads besides text (base.Inputs)
        self.endpoint = endpoint
        self.client = client
        self.estimator = estimator
        self.upstream_model = upstream_model or None
        self.timeouts = timeouts or Timeouts()
        self.refusal: str | None = None
        if endpoint.guarded:
            try:  # early and clear for a bad URL or an address literal; every connect checks again
                client.policy.check_literal(endpoint.url)
            except EgressRefused as exc:
                self.refusal = str(exc)

    def _check_allowed(self) -> None:
        if self.refusal is not None:
            raise ModelRequestFailed(f"upstream {self.name} refused: {self.refusal}")

    async def _call_json(self, payload: bytes, endpoint: Endpoint | None = None) -> dict:
        """POST (to the chat endpoint, or `endpoint`) and return the decoded 200 body, all within the total timeout."""
        self._check_allowed()
        endpoint = endpoint or self.endpoint
        if endpoint.guarded:  # its connects resolve names through the egress policy, which no deadline bounds
            try:
                async with asyncio.timeout(self.timeouts.total):
                    raw = await self._fetch(payload, endpoint)
            except TimeoutError:
                raise ModelRequestTimeout(f"upstream {self.name} {_late(self.timeouts.total)}") from None
        else:
            raw = await self._fetch(payload, endpoint)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ModelRequestFailed(f"upstream {self.name} answered with a body that is not JSON: "
                                     f"{self.endpoint.scrub(raw[:REASON_SCAN].decode('utf-8', 'replace'), 200)}") from None
        if not isinstance(body, dict) or body.get("error") or body.get("type") == "error":
            raise self.failure_from(body)
        return body

    async def _fetch(self, payload: bytes, endpoint: Endpoint) -> bytes:
        """The whole 200 body by the total timeout: its deadline bounds every wait of the call (a pool slot, the
        connect, the head, retries, the body), each of which has its own timer when it waits, so the call needs
        no asyncio.timeout (a Timeout and one more timer, ~4.5 us a call); running out is the same 504."""
        timeouts = self.timeouts
        within = (asyncio.get_running_loop().time() + timeouts.total, _late(timeouts.total))
        response, _ = await self.client.open(endpoint, payload, timeouts, deadline=time.monotonic() + timeouts.total,
                                             within=within)
        return await self._read_all(response, within)

    async def _read_all(self, response: Response, within: tuple[float, str] | None = None) -> bytes:
        try:
            return await (response.read(*within) if within is not None else response.read())
        except CLIENT_ERRORS as exc:
            raise upstream_failure(self.endpoint, exc) from None
        finally:
            response.release()

    def failure_from(self, body: Any) -> ModelRequestFailed:
        """An error object the upstream sent with a 200 status, in a body or a stream event."""
        return ModelRequestFailed(f"upstream {self.name} failed: {self.endpoint.scrub(object_reason(body))}")

    def unreadable(self, exc: BaseException) -> ModelRequestFailed:
        """The failure for an answer whose shape or values are not what the protocol says."""
        return ModelRequestFailed(f"upstream {self.name} sent an answer that cannot be used: "
                                  f"{self.endpoint.scrub(str(exc), 200)}")

    def decode_event(self, data: bytes) -> dict:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ModelRequestFailed(f"upstream {self.name} sent a malformed stream event: "
                                     f"{self.endpoint.scrub(data[:REASON_SCAN].decode('utf-8', 'replace'), 200)}") from None
        if not isinstance(chunk, dict):
            raise ModelRequestFailed(f"upstream {self.name} sent a stream event that is not an object")
        return chunk

    async def _open_stream(self, payload: bytes) -> tuple[Response, EventReader]:
        """POST a streaming request; the caller closes the response however the stream ends."""
        self._check_allowed()
        response, started = await self.client.open(self.endpoint, payload, self.timeouts)
        first_byte_at = started + self.timeouts.first_byte  # headers and the first event, together
        if response.content_type == "application/json":  # an error object instead of a stream
            raw = await self._read_all(response)
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
            raise self.failure_from(body)
        return response, EventReader(response, self.endpoint, first_byte_at, self.timeouts.idle)

    models_url: str = ""  # set by each protocol: where `check()` asks for the model list

    async def check(self) -> None:
        """Ask the upstream for its model list with our secret (a group's creation check): returns when
        it answers 200, else raises ModelRequestFailed / ModelRequestTimeout saying why."""
        self._check_allowed()
        endpoint = self.endpoint
        headers = {k: v for k, v in endpoint.headers.items() if k != "Content-Type"}
        models = Endpoint(endpoint.name, self.models_url, headers, endpoint.secret, endpoint.guarded)
        try:
            async with asyncio.timeout(min(self.timeouts.total, 15.0)):
                response = await self.client.send(models, None, self.timeouts, method="GET")
                try:
                    raw = await response.read()
                finally:
                    response.release()
        except TimeoutError:
            raise ModelRequestTimeout(f"upstream {self.name} did not answer in time") from None
        except CLIENT_ERRORS as exc:
            raise upstream_failure(endpoint, exc) from None
        if response.status != 200:
            raise ModelRequestFailed(f"upstream {self.name} answered {response.status}: "
                                     f"{self.endpoint.scrub(error_reason(raw))}")

    @staticmethod
    async def finish_response(response: Response) -> None:
        """Read a finished stream's last bytes so its connection goes back to the pool."""
        try:
            await response.read(asyncio.get_running_loop().time() + 1.0)
        except CLIENT_ERRORS:
            response.close()
            return
        response.release()

    async def close(self) -> None:
        """Nothing of its own to close: the pooled sessions belong to the registry's UpstreamClient."""
