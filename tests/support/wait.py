"""Waiting on state, never on the clock: poll a condition until it holds.

The timeout is a ceiling for a test that is stuck, sized for a busy 2-core machine; it is not a promise
about speed. Promises about time ("within 2 s") live in tests marked `timing`.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

CEILING = 30.0  # seconds before a wait gives up and fails the test


def wait_until(condition: Callable[[], T], what: str, timeout: float = CEILING, interval: float = 0.02) -> T:
    """The first truthy value of `condition()`; fails the test with `what` if none came within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g}s for {what}")
        time.sleep(interval)


def elapsed_until(condition: Callable[[], object], what: str, timeout: float = CEILING) -> float:
    """Seconds until `condition()` held: for `timing` tests, which compare it with a generous ceiling."""
    started = time.monotonic()
    wait_until(condition, what, timeout)
    return time.monotonic() - started
