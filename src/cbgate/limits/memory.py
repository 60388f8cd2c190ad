"""In-process limiter: plain counters on the event loop (one thread touches them, so no locks).

Requests per minute use a sliding log of admission times; tokens per minute a fixed one-minute window
that reservations are charged to and settlements corrected in; the quota counts tokens used since
the process started (the Redis limiter keeps it across processes and restarts).
"""
from __future__ import annotations

import time
from collections import deque

from cbgate.errors import ConcurrencyExceeded, RateLimitExceeded, TokenQuotaExceeded
from cbgate.limits.base import EnvLimits

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


class MemoryLimiter:
    def __init__(self):
        self.scopes: dict[str, _Scope] = {}
        self.quota_used: dict[str, int] = {}  # env -> tokens used or reserved

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def seed_quota(self, used: dict[str, int]) -> None:
        """Start the quota counters from what the ledger says each env used (at startup)."""
        self.quota_used.update(used)

    def inflight(self, scope: str) -> int:
        found = self.scopes.get(scope)
        return found.inflight if found else 0

    async def admit(self, scope_name: str, env_id: str, limits: EnvLimits, cost: int) -> MemoryTicket:
        scope = self.scopes.get(scope_name)
        if scope is None:
            scope = self.scopes[scope_name] = _Scope()
        if limits.concurrency is not None and scope.inflight >= limits.concurrency:
            raise ConcurrencyExceeded(f"more than {limits.concurrency} concurrent requests in this environment")
        now = time.monotonic()
        if limits.rpm is not None:
            log = scope.admitted
            while log and log[0] <= now - WINDOW:
                log.popleft()
            if len(log) >= limits.rpm:
                raise RateLimitExceeded(f"more than {limits.rpm} requests per minute",
                                        retry_after=log[0] + WINDOW - now)
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
        return MemoryTicket(self, scope, env_id, window, cost)
