"""A request's meter finishes exactly once, with its final record, however the request ends."""
import asyncio

import pytest

from cbgate.core.auth import Principal
from cbgate.core.metering import Metering
from cbgate.errors import RateLimitExceeded
from cbgate.protocol.chat_request import parse_chat_request
from cbgate.protocol.chat_response import Usage

PRINCIPAL = Principal("team-a", "key-a", "server")
REQUEST = parse_chat_request({"model": "m1", "messages": [{"role": "user", "content": "hi"}]})


def run_meter(body) -> list:
    """Meter one request whose work is `body(meter)`; return the records its finish callbacks saw."""
    seen = []

    async def request():
        with Metering().start(PRINCIPAL, "cloudbase", REQUEST, "req-1") as meter:
            meter.on_finish(seen.append)
            meter.on_finish(lambda record: 1 / 0)  # a broken callback must not hide the outcome
            await body(meter)

    async def main():
        task = asyncio.create_task(request())
        await asyncio.sleep(0.01)
        task.cancel()  # a client that left; a no-op for a request already done
        try:
            await task
        except (asyncio.CancelledError, RateLimitExceeded):
            pass
    asyncio.run(main())
    return seen


async def served(meter):
    meter.serving("dep")
    meter.usage = Usage(3, 4)


async def refused(meter):
    raise RateLimitExceeded("too many")


async def left(meter):
    meter.serving("dep")
    await asyncio.sleep(10)


@pytest.mark.parametrize("body, expected", [
    (served, (200, None, False, 7)),
    (refused, (429, "EXCEED_RATELIMIT", False, 0)),
    (left, (499, None, True, 0)),
])
def test_finish_callbacks_run_once_with_the_final_record(body, expected):
    [record] = run_meter(body)
    assert (record.status, record.code, record.disconnected, record.total_tokens) == expected
