"""HTTP to upstream providers: one pooled keep-alive session per trust level (created in the app's
lifespan), timeouts, retries before the first byte, and the mapping of every failure to our errors.

Redirects are never followed (a redirect could lead a tenant URL past the egress policy), and no
failure message carries the deployment's secret.
"""
from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from cbgate.errors import ModelRequestFailed, ModelRequestTimeout
from cbgate.providers.netguard import EgressPolicy, EgressRefused, GuardedConnector
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

    def scrub(self, text: str, limit: int = REASON_LIMIT) -> str:
        """`text` as we may show it: the secret masked first, then shortened to `limit` characters (the
        other way round, a secret cut in two once left its first characters in view)."""
        if self.secret:
            text = mask_secret(text[:limit + 2 * len(self.secret) + 16], self.secret)
        return text[:limit]


class UpstreamClient:
    """The pooled sessions: `trusted` for operator URLs, `guarded` (egress policy at connect) for tenants'."""

    def __init__(self, policy: EgressPolicy, retry: RetryPolicy | None = None, pool_size: int = 256,
                 resolver: AbstractResolver | None = None, keepalive: float | None = 30.0):
        self.policy = policy
        self.retry = retry or RetryPolicy()
        self.pool_size = pool_size
        self.keepalive = keepalive  # seconds an idle connection is kept for reuse; None: one connection a request
        self.resolver = resolver  # the name service under the guard (tests put a scripted one here)
        self._names: AbstractResolver | None = None
        self._connect_timeouts: dict[float, aiohttp.ClientTimeout] = {}  # one per configured value, reused
        self._trusted: aiohttp.ClientSession | None = None
        self._guarded: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Create the sessions on the running loop (aiohttp binds them to it)."""
        reuse = {"keepalive_timeout": self.keepalive} if self.keepalive is not None else {"force_close": True}
        options = {"limit": self.pool_size, "limit_per_host": 0, **reuse,
                   "enable_cleanup_closed": False}
        self._trusted = self._session(aiohttp.TCPConnector(**options))
        self._names = self.resolver or DefaultResolver()
        self._guarded = self._session(GuardedConnector(self.policy, self._names, **options))

    @staticmethod
    def _session(connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None),
                                     auto_decompress=True, trust_env=False, json_serialize=None,
                                     skip_auto_headers=("User-Agent",))

    def session(self, guarded: bool) -> aiohttp.ClientSession:
        session = self._guarded if guarded else self._trusted
        if session is None:
            raise ModelRequestFailed("the upstream client is not started")
        return session

    async def close(self) -> None:
        for session in (self._trusted, self._guarded):
            if session is not None:
                await session.close()
        if self._names is not None and self.resolver is None:
            await self._names.close()
        self._trusted = self._guarded = self._names = None

    async def open(self, endpoint: Endpoint, body: bytes, timeouts: Timeouts,
                   deadline: float | None = None) -> tuple[aiohttp.ClientResponse, float]:
        """POST `body` and return a 200 response whose headers have arrived (the caller releases it),
        with the loop time its successful try began (first-byte deadlines count from there).

        Retries 429/5xx and connect failures with backoff while nothing has reached the client; every
        other failure, and the last retryable one, raises ModelRequestFailed or ModelRequestTimeout.
        """
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            attempt += 1
            started = loop.time()
            try:
                response = await self._post(endpoint, body, timeouts)
            except _Retryable as exc:
                wait = self._backoff(attempt)
                failure = exc.failure
            else:
                if response.status == 200:
                    return response, started
                failure, wait = await self._refusal(endpoint, response, attempt)
            if wait is None or attempt >= self.retry.attempts or (
                    deadline is not None and time.monotonic() + wait >= deadline):
                raise failure
            log.warning("%s; retrying in %.2fs", failure.message, wait)
            await asyncio.sleep(wait)

    async def _post(self, endpoint: Endpoint, body: bytes, timeouts: Timeouts) -> aiohttp.ClientResponse:
        session = self.session(endpoint.guarded)
        connect = self._connect_timeouts.get(timeouts.connect)
        if connect is None:
            connect = self._connect_timeouts[timeouts.connect] = aiohttp.ClientTimeout(sock_connect=timeouts.connect)
        try:
            async with asyncio.timeout(timeouts.first_byte):
                return await session.post(endpoint.url, data=body, headers=endpoint.headers, allow_redirects=False,
                                          timeout=connect)
        except EgressRefused as exc:
            raise ModelRequestFailed(f"upstream {endpoint.name} refused: {exc}") from None
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            raise _Retryable(ModelRequestFailed(
                f"upstream {endpoint.name} could not be reached: {endpoint.scrub(_describe(exc))}")) from None
        except TimeoutError:
            raise ModelRequestTimeout(f"upstream {endpoint.name} sent no answer within "
                                      f"{timeouts.first_byte:g}s") from None
        except aiohttp.ServerDisconnectedError:
            # typically a pooled keep-alive connection the upstream had already closed
            raise _Retryable(ModelRequestFailed(f"upstream {endpoint.name} closed the connection")) from None
        except aiohttp.ClientError as exc:
            raise ModelRequestFailed(f"upstream {endpoint.name} failed: {endpoint.scrub(_describe(exc))}") from None

    async def _refusal(self, endpoint: Endpoint, response: aiohttp.ClientResponse,
                       attempt: int) -> tuple[ModelRequestFailed, float | None]:
        """The error for a non-200 answer, and how long to wait before retrying (None: do not retry)."""
        try:
            raw = await asyncio.wait_for(response.read(), 5.0)
        except (aiohttp.ClientError, TimeoutError):
            raw = b""
        finally:
            response.release()
        status = response.status
        if 300 <= status < 400:
            return ModelRequestFailed(f"upstream {endpoint.name} answered with a redirect ({status}), "
                                      f"which is not followed", upstream_status=status), None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        too_long = retry_after is not None and retry_after > self.retry.max_retry_after
        failure = ModelRequestFailed(f"upstream {endpoint.name} answered {status}: "
                                     f"{endpoint.scrub(error_reason(raw))}", upstream_status=status,
                                     retry_after=retry_after if too_long else None)  # passed on, not waited for
        if status not in RETRYABLE_STATUSES or too_long:
            return failure, None
        return failure, self._backoff(attempt) if retry_after is None else retry_after

    def _backoff(self, attempt: int) -> float:
        return self.retry.backoff * (2 ** (attempt - 1)) * (0.5 + random.random())


class _Retryable(Exception):
    def __init__(self, failure: ModelRequestFailed):
        self.failure = failure


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # shortened by Endpoint.scrub, after masking


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


def read_failure(endpoint: Endpoint, exc: BaseException) -> ModelRequestFailed:
    """A failure while reading an answer's body (reset, truncated payload...)."""
    return ModelRequestFailed(f"upstream {endpoint.name} broke off its answer: {endpoint.scrub(_describe(exc))}")
