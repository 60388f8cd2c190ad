"""The in-process limiter's requests-per-minute log: exact to a tenth of a second (never admitting more than
the limit in any minute), and as small at full speed as at one request a second."""
import asyncio

import pytest

from cbgate.errors import RateLimitExceeded
from cbgate.limits import memory
from cbgate.limits.base import EnvLimits
from cbgate.limits.memory import MemoryLimiter


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock(1000.0)
    monkeypatch.setattr(memory.time, "monotonic", c)
    return c


def admit(limiter: MemoryLimiter, limits: EnvLimits):
    ticket = asyncio.run(limiter.admit("env", "env", limits, 1))
    ticket.finish(1)


def test_a_minute_holds_exactly_the_limit_and_the_oldest_leaves_on_time(clock):
    limiter, limits = MemoryLimiter(), EnvLimits(concurrency=None, rpm=5)
    for i in range(5):
        clock.now = 1000.0 + i * 0.01
        admit(limiter, limits)
    clock.now = 1059.99
    with pytest.raises(RateLimitExceeded) as refused:
        admit(limiter, limits)
    assert refused.value.retry_after == pytest.approx(0.05)  # when the last of that tenth of a second leaves
    clock.now = 1060.03
    with pytest.raises(RateLimitExceeded):  # the first left at 1060.00: up to a tenth of a second late, never early
        admit(limiter, limits)
    clock.now = 1060.04
    admit(limiter, limits)  # all five of that tenth of a second are gone: room for five again
    for _ in range(4):
        admit(limiter, limits)
    with pytest.raises(RateLimitExceeded):
        admit(limiter, limits)


def test_the_log_stays_small_at_full_speed(clock):
    limiter, limits = MemoryLimiter(), EnvLimits(concurrency=None, rpm=10_000_000)
    for i in range(90_000):  # 1,000 requests a second for 90 s
        clock.now = 1000.0 + i / 1000
        admit(limiter, limits)
    scope = limiter.scopes["env"]
    assert len(scope.admitted) <= 601 and scope.admitted_n == sum(n for _, _, n in scope.admitted)
    assert 60_000 <= scope.admitted_n <= 60_100  # the last minute's, to a tenth of a second
