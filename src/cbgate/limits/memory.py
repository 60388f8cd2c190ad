"""In-process limiter: plain counters on the event loop (one thread touches them, so no locks).

Requests per minute use a sliding log of admissions counted per tenth of a second: a busy scope's log stays
at 600 entries (one entry per admission held a minute of traffic, ~300,000 at full speed, as memory that
grew with the request rate). Tokens per minute use a fixed one-minute window that reservations are charged
to and settlements corrected in. The quota counts tokens used or reserved, starting from the ledger's total
when a quota is first seen or changed, and brought up to the ledger's total every reconcile interval (other
replicas' traffic reaches this one's counter only that way).
A request is checked against its environment's scope and its key's own at once: all pass, or none is charged.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from cbgate.errors import ServiceUnavailable
from cbgate.limits.base import EnvLimits, QuotaBook, Scope, UsageSource, refusal

log = logging.getLogger("cbgate.limits")

WINDOW = 60.0
TICKS = 10  # the rpm log's steps a second: a step leaves the window with its last admission, so the others
# in it leave up to 1/TICKS s late, never early


class _Scope:
    __slots__ = ("inflight", "admitted", "admitted_n", "tpm_window", "tpm_used")

    def __init__(self):
        self.inflight = 0
        # [step, its last admission's monotonic time, admissions in it] within the last minute, oldest first
        self.admitted: deque[list] = deque()
        self.admitted_n = 0  # their sum
        self.tpm_window = 0
        self.tpm_used = 0


class MemoryTicket:
    __slots__ = ("limiter", "charged", "window", "cost", "done")

    def __init__(self, limiter: MemoryLimiter, charged: list[tuple[_Scope, str]], window: int, cost: int):
        self.limiter, self.charged, self.window, self.cost = limiter, charged, window, cost
        self.done = False

    def finish(self, used_tokens: int) -> None:
        if self.done:
            return
        self.done = True
        delta = used_tokens - self.cost
        used = self.limiter.quota_used
        for scope, account in self.charged:
            scope.inflight -= 1
            if scope.tpm_window == self.window:
                scope.tpm_used += delta
            used[account] = used.get(account, 0) + delta
            self.limiter.quota.release(account, self.cost)


class MemoryLimiter:
    def __init__(self, usage_source: UsageSource | None = None, reconcile_interval: float = 60.0):
        self.scopes: dict[str, _Scope] = {}
        self.quota_used: dict[str, int] = {}  # quota account (env, or key:<id>) -> tokens used or reserved
        self.quota = QuotaBook(usage_source, self._raise_counters, reconcile_interval)
        # scope name -> its Scope under the limits last seen: a frozen dataclass made once per snapshot's limits,
        # not per request (the limits object is the snapshot's, so `is` tells a change)
        self._env_scopes: dict[str, Scope] = {}
        self._reconciler: asyncio.Task | None = None

    async def start(self) -> None:
        self._reconciler = asyncio.create_task(self.quota.run())

    async def close(self) -> None:
        if self._reconciler:
            self._reconciler.cancel()

    async def _raise_counters(self, floors: dict[str, int]) -> None:
        for account, floor in floors.items():
            if self.quota_used.get(account, 0) < floor:
                self.quota_used[account] = floor

    async def admit(self, scope_name: str, env_id: str, limits: EnvLimits, cost: int,
                    also: tuple[Scope, ...] = ()) -> MemoryTicket:
        scope = self._env_scopes.get(scope_name)
        if scope is None or scope.limits is not limits or scope.account != env_id:  # new, or a new snapshot's
            scope = self._env_scopes[scope_name] = Scope(scope_name, env_id, limits)
        scopes = (scope, *also) if also else (scope,)
        for s in scopes:
            if self.quota.seen.get(s.account) != s.limits.token_quota:
                try:
                    await self.quota.ensure(s.account, s.limits.token_quota)
                except Exception as exc:  # the quota fails closed: without the ledger, the counter is unknown
                    log.warning("could not read the ledger to start a quota counter: %s", exc)
                    raise ServiceUnavailable("the gateway cannot check this environment's token quota; "
                                             "try again shortly") from None
        now, window = time.monotonic(), int(time.time() // WINDOW)
        states = [self._check(s, cost, now, window) for s in scopes]  # raises before anything is charged
        step = int(now * TICKS)
        for s, state in zip(scopes, states):  # everything passed: take the slots, charge the reservations
            state.inflight += 1
            if s.limits.rpm is not None:
                admitted = state.admitted
                if admitted and admitted[-1][0] == step:
                    last = admitted[-1]
                    last[1] = now
                    last[2] += 1
                else:
                    admitted.append([step, now, 1])
                state.admitted_n += 1
            state.tpm_used += cost
            self.quota_used[s.account] = self.quota_used.get(s.account, 0) + cost
            self.quota.reserve(s.account, cost)
        return MemoryTicket(self, [(state, s.account) for s, state in zip(scopes, states)], window, cost)

    def _check(self, s: Scope, cost: int, now: float, window: int) -> _Scope:
        limits = s.limits
        scope = self.scopes.get(s.name)
        if scope is None:
            scope = self.scopes[s.name] = _Scope()
        if limits.concurrency is not None and scope.inflight >= limits.concurrency:
            raise refusal("concurrency", s)
        if limits.rpm is not None:
            admitted, out = scope.admitted, now - WINDOW
            while admitted and admitted[0][1] <= out:
                scope.admitted_n -= admitted.popleft()[2]
            if scope.admitted_n >= limits.rpm:  # then admitted holds a step: rpm is at least 1
                raise refusal("rpm", s, admitted[0][1] + WINDOW - now)
        if scope.tpm_window != window:
            scope.tpm_window, scope.tpm_used = window, 0
        if limits.tpm is not None and scope.tpm_used + cost > limits.tpm and scope.tpm_used > 0:
            raise refusal("tpm", s, (window + 1) * WINDOW - time.time())
        used = self.quota_used.get(s.account, 0)
        if limits.token_quota is not None and used + cost > limits.token_quota:
            raise refusal("quota", s, used)
        return scope
