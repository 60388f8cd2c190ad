"""HTTP to upstream providers: pooled keep-alive connections per trust level (created in the app's
lifespan), timeouts, retries before the first byte, and the mapping of every failure to our errors.

Model calls go through the gateway's own HTTP/1.1 client (`http1_pool`, `http1_conn`): aiohttp's request
machinery cost ~390 us of CPU per call against ~45 us for a bare stream (bench/results/features.md).
The aiohttp sessions remain for the MCP and agent traffic (`session()`), behind the same egress policy.

Redirects are never followed (a redirect could lead a tenant URL past the egress policy), and no
failure message carries the deployment's secret.
"""
from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import random
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from cbgate.errors import ModelRequestFailed
from cbgate.providers.http1_conn import HTTPClientError, ReadTimeout, Response
from cbgate.providers.http1_pool import Pool, Target, prepare, request_bytes
from cbgate.providers.netguard import EgressPolicy, GuardedConnector
from cbgate.providers.upstream_errors import CLIENT_ERRORS, retryable, upstream_failure
from cbgate.text import mask_secret

log = logging.getLogger("cbgate.upstream")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
REASON_LIMIT = 300  # characters of an upstream's error text we pass on
REASON_SCAN = 64 * 1024  # characters of it we read at most (far past what is shown, so masking sees it all)
MAX_TIMEOUT = 86400.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. `total` bounds a whole non-streaming call (retries included), as the public service does."""
    connect: float = 10.0
    first_byte: float = 60.0
    idle: float = 60.0
    total: float = 60.0

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> Timeouts:
        """From a config table like `{connect = 5, first_byte = 30, idle = 30, total = 60}`."""
        if not options:
            return cls()
        known = {"connect", "first_byte", "idle", "total"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown timeouts {sorted(unknown)}; known: {sorted(known)}")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in options.values()):
            raise ValueError("timeouts must be numbers of seconds")
        values = {k: float(v) for k, v in options.items()}
        if not all(0 < v <= MAX_TIMEOUT for v in values.values()):
            raise ValueError(f"timeouts must be positive numbers of seconds, at most {MAX_TIMEOUT:g}")
        return cls(**values)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3  # tries in all, before the first byte only
    backoff: float = 0.1  # seconds before the second try; doubles, with jitter
    max_retry_after: float = 5.0  # a longer Retry-After is not waited for: the next deployment is tried


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One upstream URL and the headers that go with every request to it (the secret among them)."""
    name: str
    url: str
    headers: dict[str, str]
    secret: str | None
    guarded: bool
    targets: dict = field(default_factory=dict, compare=False, repr=False)  # the client's prepared heads

    def scrub(self, text: str, limit: int = REASON_LIMIT) -> str:
        """`text` as we may show it: the secret masked first, then shortened to `limit` characters (the
        other way round, a secret cut in two once left its first characters in view)."""
        if self.secret:
            text = mask_secret(text[:limit + 2 * len(self.secret) + 16], self.secret)
        return text[:limit]


class UpstreamClient:
    """The pools: `trusted` for operator URLs, `guarded` (egress policy at connect) for tenants'."""

    def __init__(self, policy: EgressPolicy, retry: RetryPolicy | None = None, pool_size: int = 256,
                 resolver: AbstractResolver | None = None, keepalive: float | None = 30.0,
                 tls: ssl.SSLContext | None = None):
        self.policy = policy
        self.tls = tls  # None: the system's CAs, as aiohttp's default context (tests pass their own CA)
        self.retry = retry or RetryPolicy()
        self.pool_size = pool_size
        self.keepalive = keepalive  # seconds an idle connection is kept for reuse; None: one connection a request
        self.resolver = resolver  # the name service under the guard (tests put a scripted one here)
        self._names: AbstractResolver | None = None
        self._pools: dict[bool, Pool] = {}
        self._trusted: aiohttp.ClientSession | None = None
        self._guarded: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Create the pools and sessions on the running loop (both bind to it)."""
        self._names = self.resolver or DefaultResolver()
        tls = self.tls
        if tls is None:
            tls = ssl.create_default_context()
            tls.set_alpn_protocols(["http/1.1"])
        self._pools = {False: Pool(None, None, self.pool_size, self.keepalive, tls),
                       True: Pool(self.policy, self._names, self.pool_size, self.keepalive, tls)}
        reuse = {"keepalive_timeout": self.keepalive} if self.keepalive is not None else {"force_close": True}
        options = {"limit": self.pool_size, "limit_per_host": 0, **reuse, "enable_cleanup_closed": False}
        self._trusted = self._session(aiohttp.TCPConnector(**options))
        self._guarded = self._session(GuardedConnector(self.policy, self._names, **options))

    @staticmethod
    def _session(connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None),
                                     auto_decompress=True, trust_env=False, json_serialize=None,
                                     skip_auto_headers=("User-Agent",))

    def session(self, guarded: bool) -> aiohttp.ClientSession:
        """An aiohttp session for the MCP and agent traffic (model calls use `send` and `open`)."""
        session = self._guarded if guarded else self._trusted
        if session is None:
            raise ModelRequestFailed("the upstream client is not started")
        return session

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools = {}
        for session in (self._trusted, self._guarded):
            if session is not None:
                await session.close()
        if self._names is not None and self.resolver is None:
            await self._names.close()
        self._trusted = self._guarded = self._names = None

    def _target(self, endpoint: Endpoint, method: str) -> Target:
        close = self.keepalive is None
        target = endpoint.targets.get((method, close))
        if target is None:
            target = endpoint.targets[(method, close)] = prepare(method, endpoint.url, endpoint.headers, close)
        return target

    async def send(self, endpoint: Endpoint, body: bytes | None, timeouts: Timeouts,
                   method: str = "POST", within: Within | None = None) -> Response:
        """One try: the answer once its head has arrived within the first-byte timeout (or by `within`'s
        deadline, when that comes first), any status. Raises the client's own exceptions (map them with
        `upstream_failure`)."""
        pool = self._pools.get(endpoint.guarded)
        if pool is None:
            raise ModelRequestFailed("the upstream client is not started")
        target = self._target(endpoint, method)
        deadline, what = pool.loop.time() + timeouts.first_byte, _no_answer(timeouts.first_byte)
        if within is not None and within[0] < deadline:
            deadline, what = within
        return await pool.send(target, request_bytes(target, body), deadline, timeouts.connect, what)

    async def open(self, endpoint: Endpoint, body: bytes, timeouts: Timeouts,
                   deadline: float | None = None, within: Within | None = None) -> tuple[Response, float]:
        """POST `body` and return a 200 response whose headers have arrived (the caller releases it),
        with the loop time its successful try began (first-byte deadlines count from there).

        Retries 429/5xx and connect failures with backoff while nothing has reached the client; every
        other failure, and the last retryable one, raises ModelRequestFailed or ModelRequestTimeout.
        `within`: every wait ends by its loop-time deadline, as a ReadTimeout saying its text (a non-streaming
        call's total timeout).
        """
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            attempt += 1
            started = loop.time()
            try:
                response = await self.send(endpoint, body, timeouts, within=within)
            except CLIENT_ERRORS as exc:
                failure = upstream_failure(endpoint, exc)
                if not retryable(exc):
                    raise failure from None
                wait = self._backoff(attempt)
            else:
                if response.status == 200:
                    return response, started
                failure, wait = await self._refusal(endpoint, response, attempt, within)
            if wait is None or attempt >= self.retry.attempts or (
                    deadline is not None and time.monotonic() + wait >= deadline):
                raise failure
            log.warning("%s; retrying in %.2fs", failure.message, wait)
            await asyncio.sleep(wait)

    async def _refusal(self, endpoint: Endpoint, response: Response, attempt: int,
                       within: Within | None = None) -> tuple[ModelRequestFailed, float | None]:
        """The error for a non-200 answer, and how long to wait before retrying (None: do not retry)."""
        limit = asyncio.get_running_loop().time() + 5.0
        bound = within is not None and within[0] < limit  # the call's own deadline comes first
        try:
            raw = await (response.read(*within) if bound else response.read(limit))
        except ReadTimeout as exc:
            if bound:  # the call ran out of time reading it: a timeout, as any other wait of the call
                raise upstream_failure(endpoint, exc) from None
            raw = b""
        except HTTPClientError:
            raw = b""
        finally:
            response.release()
        status = response.status
        if 300 <= status < 400:
            return ModelRequestFailed(f"upstream {endpoint.name} answered with a redirect ({status}), "
                                      f"which is not followed", upstream_status=status), None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        too_long = retry_after is not None and retry_after > self.retry.max_retry_after
        failure = ModelRequestFailed(f"upstream {endpoint.name} answered {status}: "
                                     f"{endpoint.scrub(error_reason(raw))}", upstream_status=status,
                                     retry_after=retry_after if too_long else None)  # passed on, not waited for
        if status not in RETRYABLE_STATUSES or too_long:
            return failure, None
        return failure, self._backoff(attempt) if retry_after is None else retry_after

    def _backoff(self, attempt: int) -> float:
        return self.retry.backoff * (2 ** (attempt - 1)) * (0.5 + random.random())


Within = tuple[float, str]  # a deadline (loop time) every wait of a call ends by, and what its timeout says


@functools.lru_cache(maxsize=64)
def _no_answer(first_byte: float) -> str:
    return f"sent no answer within {first_byte:g}s"  # formatted once per timeout value, not per request


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_reason(raw: bytes) -> str:
    """The upstream's own words from an error body (OpenAI, Anthropic or plain text), NOT shortened:
    pass it through Endpoint.scrub, which masks the secret before it shortens."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:REASON_SCAN].decode("utf-8", "replace").strip() or "(empty body)"
    return object_reason(body)


def object_reason(body: Any) -> str:
    """The message of an error object: `{"error": {"message": ...}}`, `{"error": "..."}`, `{"message": ...}`.
    Not shortened either (see error_reason)."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message") or error.get("msg") or error.get("type")
            if message:
                return str(message)[:REASON_SCAN]
        elif isinstance(error, str):
            return error[:REASON_SCAN]
    return orjson.dumps(body)[:REASON_SCAN].decode("utf-8", "replace")
