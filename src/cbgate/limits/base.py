"""The limiter contract shared by the in-process and the Redis limiter.

`admit()` checks every limit of one scope at once and reserves what the request may cost; the `Ticket`
it returns is finished exactly once when the request ends (however it ends), which frees the
concurrency slot and settles the token reservation to the real usage.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Awaitable, Callable, Protocol

from cbgate.errors import ConcurrencyExceeded, RateLimitExceeded, TokenQuotaExceeded
from cbgate.tokens import NON_TEXT_ALLOWANCE, generous_count, prompt_tokens

log = logging.getLogger("cbgate.limits")

OFF = -1  # stored for "no limit", so NULL can keep meaning "the default"
DEFAULT_MAX_TOKENS = 1024  # reserved for a request that names no max_tokens


@dataclass(frozen=True, slots=True)
class EnvLimits:
    """Limits of one scope; None = unlimited."""
    concurrency: int | None = 5
    rpm: int | None = None
    tpm: int | None = None
    token_quota: int | None = None  # total tokens the environment may use, ever

    @property
    def any(self) -> bool:
        # Read on every request: plain tests, no generator.
        return not (self.concurrency is None and self.rpm is None and self.tpm is None and self.token_quota is None)


@dataclass(frozen=True, slots=True)
class Scope:
    """One set of counters admission checks: an environment (or its publishable keys' share), or one API
    key under it. `account` names the quota counter (the env id, or `key:<key id>`); `holder` is what a
    refusal names."""
    name: str
    account: str
    limits: EnvLimits
    holder: str = "this environment"


def key_account(key_id: str) -> str:
    return f"key:{key_id}"


def refusal(kind: str, scope: Scope, detail: float = 0.0) -> Exception:
    """The 429 of one refused limit of `scope` (kind: concurrency, rpm, tpm, quota); `detail` is seconds to
    wait for rpm and tpm, the tokens already used for the quota."""
    limits, holder = scope.limits, scope.holder
    if kind == "concurrency":
        return ConcurrencyExceeded(f"more than {limits.concurrency} concurrent requests in {holder}"
                                   if holder == "this environment" else
                                   f"{holder} has reached its limit of {limits.concurrency} concurrent requests")
    if kind == "rpm":
        return RateLimitExceeded(f"more than {limits.rpm} requests per minute" if holder == "this environment" else
                                 f"{holder} has reached its requests-per-minute (QPM) limit of {limits.rpm}",
                                 retry_after=detail)
    if kind == "tpm":
        return RateLimitExceeded(f"more than {limits.tpm} tokens per minute", retry_after=detail)
    whose = "the environment's" if holder == "this environment" else f"{holder}'s"
    return TokenQuotaExceeded(f"{whose} token quota is used up" if detail >= limits.token_quota
                              else f"{whose} token quota has too few tokens left for this request")


SERVER_DEFAULTS = EnvLimits()
# Publishable keys live in browsers: their traffic gets its own, smaller share of the environment.
PUBLISHABLE_DEFAULTS = EnvLimits(concurrency=2, rpm=60, tpm=40_000)
FIELDS = ("concurrency", "rpm", "tpm", "token_quota")


def resolve_limits(stored: dict[str, int | None] | None) -> EnvLimits:
    """Stored values (None = default, OFF = unlimited) -> the limits a server key's requests get."""
    if not stored:
        return SERVER_DEFAULTS
    values = {}
    for name in FIELDS:
        value = stored.get(name)
        values[name] = getattr(SERVER_DEFAULTS, name) if value is None else (None if value == OFF else value)
    return EnvLimits(**values)


def publishable_limits(env: EnvLimits) -> EnvLimits:
    """Never more than the environment allows, and at most the publishable defaults."""
    def lower(a: int | None, b: int | None) -> int | None:
        return b if a is None else a if b is None else min(a, b)
    return replace(env, concurrency=lower(env.concurrency, PUBLISHABLE_DEFAULTS.concurrency),
                   rpm=lower(env.rpm, PUBLISHABLE_DEFAULTS.rpm), tpm=lower(env.tpm, PUBLISHABLE_DEFAULTS.tpm))


def estimate_cost(messages: list[dict], max_tokens: int | None) -> int:
    """The request's tokens as admission reserves them: the prompt counted generously (cbgate.tokens), plus
    the answer's allowance."""
    return prompt_tokens(messages, generous_count, NON_TEXT_ALLOWANCE) + (max_tokens or DEFAULT_MAX_TOKENS)


class Ticket(Protocol):
    def finish(self, used_tokens: int) -> None:
        """Release the slot and settle the reservation to `used_tokens`; idempotent, never blocks."""


class Limiter(Protocol):
    async def admit(self, scope: str, env_id: str, limits: EnvLimits, cost: int, also: tuple[Scope, ...] = ()) -> Ticket:
        """Admit one request of `scope` (an env, or an env's publishable keys) and of each scope in `also`
        (its API key's own limits) at once, reserving `cost` tokens against each quota and tokens per minute;
        raise a 429 CloudBaseError naming the first scope that is over, having charged none."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


# env ids -> the tokens each used by the ledger (the app flushes its own spool first, so this is current)
UsageSource = Callable[[list[str]], Awaitable[dict[str, int]]]
_UNSEEN = object()


class QuotaBook:
    """Where quota counters meet the ledger, for either limiter. A counter is reconciled before it is
    first used, when an environment's quota is set or changed, when the limiter finds it missing (a Redis
    that came back empty), and every `interval` seconds: it becomes at least the ledger's total plus the
    reservations this process holds. Counters only move up here (settlements bring them down), so a
    ledger that lags a moment behind never lets an environment spend more than its quota."""

    def __init__(self, usage_source: UsageSource | None, raise_to: Callable[[dict[str, int]], Awaitable[None]],
                 interval: float = 60.0):
        self.usage_source = usage_source
        self.raise_to = raise_to  # env -> floor: each counter becomes at least its floor
        self.interval = interval
        self.seen: dict[str, object] = {}  # env -> the quota its counter was last reconciled under
        self.reserved: dict[str, int] = {}  # env -> tokens reserved by this process's running requests
        self._locks: dict[str, asyncio.Lock] = {}

    def reserve(self, env_id: str, tokens: int) -> None:
        self.reserved[env_id] = self.reserved.get(env_id, 0) + tokens

    def release(self, env_id: str, tokens: int) -> None:
        left = self.reserved.get(env_id, 0) - tokens
        if left > 0:
            self.reserved[env_id] = left
        else:
            self.reserved.pop(env_id, None)

    async def ensure(self, env_id: str, quota: int | None) -> None:
        """Reconcile the env's counter first if its quota is new to this process or changed."""
        if self.seen.get(env_id, _UNSEEN) == quota:
            return
        lock = self._locks.setdefault(env_id, asyncio.Lock())
        async with lock:
            if self.seen.get(env_id, _UNSEEN) == quota:
                return  # another request of the env did it while this one waited
            if quota is not None:
                await self.reconcile([env_id])
            self.seen[env_id] = quota

    async def reconcile(self, envs: list[str]) -> None:
        used = await self.usage_source(envs) if self.usage_source is not None else {}
        await self.raise_to({env: used.get(env, 0) + self.reserved.get(env, 0) for env in envs})

    async def run(self) -> None:
        """Every `interval`: counters of every env with a quota, against the ledger (replicas without a
        shared Redis each count their own traffic; this brings in the others')."""
        while True:
            await asyncio.sleep(self.interval)
            envs = [env for env, quota in self.seen.items() if quota is not None]
            if not envs:
                continue
            try:
                await self.reconcile(envs)
            except Exception as exc:  # the ledger or Redis away: the next round tries again
                log.warning("could not reconcile quota counters with the ledger: %s", exc)


class NoTicket:
    __slots__ = ()

    def finish(self, used_tokens: int) -> None:
        pass


NO_TICKET = NoTicket()
