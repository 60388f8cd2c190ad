"""The limiter contract shared by the in-process and the Redis limiter.

`admit()` checks every limit of one scope at once and reserves what the request may cost; the `Ticket`
it returns is finished exactly once when the request ends (however it ends), which frees the
concurrency slot and settles the token reservation to the real usage.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

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
    """The request's tokens as admission reserves them, cheap enough for every request (cl100k costs ~7 us
    for a 250-character message, this 0.2 us): half a token per character, more than cl100k's ~4 characters
    a token for English, plus the chat format's overhead per message, plus the answer's allowance."""
    chars = 0
    for m in messages:
        content = m.get("content")
        chars += len(content) if isinstance(content, str) else 512
    return chars // 2 + 4 * len(messages) + 3 + (max_tokens or DEFAULT_MAX_TOKENS)


class Ticket(Protocol):
    def finish(self, used_tokens: int) -> None:
        """Release the slot and settle the reservation to `used_tokens`; idempotent, never blocks."""


class Limiter(Protocol):
    async def admit(self, scope: str, env_id: str, limits: EnvLimits, cost: int) -> Ticket:
        """Admit one request of `scope` (an env, or an env's publishable keys), reserving `cost` tokens
        against the env's quota and the scope's tokens per minute; raise a 429 CloudBaseError if over."""

    async def start(self) -> None: ...

    async def seed_quota(self, used: dict[str, int]) -> None:
        """Start quota counters from the tokens each env used before (env -> tokens)."""

    async def close(self) -> None: ...


class NoTicket:
    __slots__ = ()

    def finish(self, used_tokens: int) -> None:
        pass


NO_TICKET = NoTicket()
