"""In-process limiter: plain counters on the event loop (one thread touches them, so no locks).

Requests per minute use a sliding log of admission times; tokens per minute a fixed one-minute window
that reservations are charged to and settlements corrected in; the quota counts tokens used or reserved,
starting from the ledger's total when a quota is first seen or changed, and brought up to the ledger's
total every reconcile interval (other replicas' traffic reaches this one's counter only that way).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from cbgate.errors import ConcurrencyExceeded, RateLimitExceeded, ServiceUnavailable, TokenQuotaExceeded
from cbgate.limits.base import EnvLimits, QuotaBook, UsageSource

log = logging.getLogger("cbgate.limits")

WINDOW = 60.0


class _Scope:
    __slots__ = ("inflight", "admitted", "tpm_window", "tpm_used")

    def __init__(self):
        self.inflight = 0
        self.admitted: deque[float] = deque()  # monotonic admission times within the last minute
        self.tpm_window = 0
        self.tpm_used = 0


class MemoryTicket:
    __slots__ = ("limiter", "scope", "env_id", "window", "cost", "done")

    def __init__(self, limiter: MemoryLimiter, scope: _Scope, env_id: str, window: int, cost: int):
        self.limiter, self.scope, self.env_id, self.window, self.cost = limiter, scope, env_id, window, cost
        self.done = False

    def finish(self, used_tokens: int) -> None:
        if self.done:
            return
        self.done = True
        self.scope.inflight -= 1
        delta = used_tokens - self.cost
        if self.scope.tpm_window == self.window:
            self.scope.tpm_used += delta
        used = self.limiter.quota_used
        used[self.env_id] = used.get(self.env_id, 0) + delta
        self.limiter.quota.release(self.env_id, self.cost)


class MemoryLimiter:
    def __init__(self, usage_source: UsageSource | None = None, reconcile_interval: float = 60.0):
        self.scopes: dict[str, _Scope] = {}
        self.quota_used: dict[str, int] = {}  # env -> tokens used or reserved
        self.quota = QuotaBook(usage_source, self._raise_counters, reconcile_interval)
        self._reconciler: asyncio.Task | None = None

    async def start(self) -> None:
        self._reconciler = asyncio.create_task(self.quota.run())

    async def close(self) -> None:
        if self._reconciler:
            self._reconciler.cancel()

    async def _raise_counters(self, floors: dict[str, int]) -> None:
        for env_id, floor in floors.items():
            if self.quota_used.get(env_id, 0) < floor:
                self.quota_used[env_id] = floor

    async def admit(self, scope_name: str, env_id: str, limits: EnvLimits, cost: int) -> MemoryTicket:
        if self.quota.seen.get(env_id) != limits.token_quota:
            try:
                await self.quota.ensure(env_id, limits.token_quota)
            except Exception as exc:  # the quota fails closed: without the ledger, the counter is unknown
                log.warning("could not read the ledger to start a quota counter: %s", exc)
                raise ServiceUnavailable("the gateway cannot check this environment's token quota; "
                                         "try again shortly") from None
        scope = self.scopes.get(scope_name)
        if scope is None:
            scope = self.scopes[scope_name] = _Scope()
        if limits.concurrency is not None and scope.inflight >= limits.concurrency:
            raise ConcurrencyExceeded(f"more than {limits.concurrency} concurrent requests in this environment")
        now = time.monotonic()
        if limits.rpm is not None:
            admitted = scope.admitted
            while admitted and admitted[0] <= now - WINDOW:
                admitted.popleft()
            if len(admitted) >= limits.rpm:
                raise RateLimitExceeded(f"more than {limits.rpm} requests per minute",
                                        retry_after=admitted[0] + WINDOW - now)
        window = int(time.time() // WINDOW)
        if scope.tpm_window != window:
            scope.tpm_window, scope.tpm_used = window, 0
        if limits.tpm is not None and scope.tpm_used + cost > limits.tpm and scope.tpm_used > 0:
            raise RateLimitExceeded(f"more than {limits.tpm} tokens per minute",
                                    retry_after=(window + 1) * WINDOW - time.time())
        used = self.quota_used.get(env_id, 0)
        if limits.token_quota is not None and used + cost > limits.token_quota:
            raise TokenQuotaExceeded("the environment's token quota is used up" if used >= limits.token_quota
                                     else "the environment's token quota has too few tokens left for this request")
        # everything passed: take the slot and charge the reservation
        scope.inflight += 1
        if limits.rpm is not None:
            scope.admitted.append(now)
        scope.tpm_used += cost
        self.quota_used[env_id] = used + cost
        self.quota.reserve(env_id, cost)
        return MemoryTicket(self, scope, env_id, window, cost)
