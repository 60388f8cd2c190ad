"""What admission costs a chat request, in-process and with Redis, measured in one run.

    .venv/bin/python -m bench.admission [--requests 20000] [--redis redis://127.0.0.1:6379/0] [--clients 32]

Per request: the admission calls the model service makes (estimate the cost, look up the limits,
`admit`, and `finish` when the request ends), with every limit set and none reached, against the
baseline of the same loop with limits off. With Redis, `finish` settles in a task; the figure waits for
it, so it counts both round trips. `--clients` runs that many requests at once (Redis pipelines them).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import time

from cbgate.limits.base import EnvLimits, estimate_cost
from cbgate.limits.memory import MemoryLimiter
from cbgate.limits.redis import RedisLimiter
from cbgate.protocol.chat_request import parse_chat_request

ALL_SET = EnvLimits(concurrency=1_000_000, rpm=10**12, tpm=10**15, token_quota=10**18)
OFF = EnvLimits(concurrency=None)
REQUEST = parse_chat_request({"model": "m1", "max_tokens": 256,
                              "messages": [{"role": "user", "content": "how long is a piece of string? " * 8}]})


async def one(limiter, limits: EnvLimits) -> None:
    if not limits.any:  # what the model service does for an env with every limit off
        return
    ticket = await limiter.admit("team-bench", "team-bench", limits, estimate_cost(REQUEST.messages,
                                                                                  REQUEST.max_tokens))
    ticket.finish(300)


async def per_request(limiter, limits: EnvLimits, n: int, clients: int) -> float:
    """Microseconds of wall time per admitted-and-released request, `clients` at a time."""
    async def worker(count: int) -> None:
        for _ in range(count):
            await one(limiter, limits)
            if isinstance(limiter, RedisLimiter) and limiter._pending:
                await asyncio.gather(*limiter._pending)

    start = time.perf_counter()
    await asyncio.gather(*(worker(n // clients) for _ in range(clients)))
    return (time.perf_counter() - start) / (n // clients * clients) * 1e6


async def main(n: int, redis_url: str | None, clients: int) -> None:
    memory = MemoryLimiter()
    rows = [("baseline (limits off)", await per_request(memory, OFF, n, 1)),
            ("in-process, all limits set", await per_request(memory, ALL_SET, n, 1))]
    if redis_url:
        prefix = f"cbgate-bench-{os.urandom(4).hex()}"
        redis = RedisLimiter(redis_url, prefix)
        await redis.admit("warm", "warm", ALL_SET, 1)  # loads the scripts once
        rows.append(("Redis, all limits set, 1 at a time", await per_request(redis, ALL_SET, n // 4, 1)))
        rows.append((f"Redis, all limits set, {clients} at once", await per_request(redis, ALL_SET, n // 4, clients)))
        await redis.redis.delete(*[k async for k in redis.redis.scan_iter(match=f"{prefix}:*")])
        redis.running.clear()
        await redis.close()
    for name, micros in rows:
        print(f"{name:<40} {micros:9.1f} us/request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' to skip Redis")
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.redis or None, args.clients))
