"""Readiness: a short list of named checks, each answering None (fine) or the reason it is not.

`/readyz` runs them all (a load balancer sends traffic only while every one passes); `/livez` asks none of
them, since a gateway that cannot reach its database is still alive and must not be restarted for it.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

CHECK_TIMEOUT = 2.0  # seconds one check may take before it counts as failed


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], Awaitable[str | None]]  # None: ready; else why not


async def run_checks(checks: list[Check], timeout: float = CHECK_TIMEOUT) -> dict[str, str]:
    """{name: "ok" | reason}, the checks run side by side, each within `timeout`."""
    async def one(check: Check) -> str:
        try:
            reason = await asyncio.wait_for(check.run(), timeout)
        except asyncio.TimeoutError:
            return f"no answer within {timeout:g} s"
        except Exception as exc:  # a failing check is a reason, never a 500
            return f"{type(exc).__name__}: {exc}"[:300]
        return "ok" if reason is None else reason

    results = await asyncio.gather(*(one(c) for c in checks))
    return {c.name: r for c, r in zip(checks, results)}


def store_checks(store) -> list[Check]:
    """The database answers, and has every migration this version needs."""
    async def reachable() -> str | None:
        await asyncio.to_thread(store.revision)
        return None

    async def migrations() -> str | None:
        pending = (await asyncio.to_thread(store.migration_status))["pending"]
        return f"migrations not applied: {', '.join(pending)}" if pending else None

    return [Check("store", reachable), Check("migrations", migrations)]


def engine_check(registry) -> Check:
    """Every embedded-engine deployment can evaluate: asks each local provider's `ready()`."""
    async def engines() -> str | None:
        problems = []
        for provider in local_providers(registry):
            ready = getattr(provider, "ready", None)
            reason = await ready() if ready is not None else None
            if reason is not None:
                problems.append(f"{provider.name}: {reason}")
        return "; ".join(problems) or None

    return Check("engine", engines)


def local_providers(registry) -> list:
    """The adapters of the catalog's embedded-engine deployments, once each."""
    found = {}
    for model in registry.settings.catalog:
        for deployment, provider in zip(model.deployments, registry.deployments(model.name)):
            if deployment.kind == "local":
                found[id(provider)] = provider
    return list(found.values())


def redis_check(limiter) -> Check:
    async def redis() -> str | None:
        await limiter.redis.ping()
        return None

    return Check("redis", redis)
