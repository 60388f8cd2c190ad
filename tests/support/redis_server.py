"""The machine's real Redis for tests. Unreachable Redis skips the tests that need it, except under
CI=true, where it fails them (CI must never pass by skipping the shared limiters)."""
from __future__ import annotations

import os

import pytest
import redis

REDIS_URL = os.environ.get("CBGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        message = f"Redis at {REDIS_URL} is unreachable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


def unique_prefix() -> str:
    return f"cbgate-test-{os.getpid()}-{os.urandom(4).hex()}"


def delete_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
