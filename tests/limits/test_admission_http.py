"""Admission through real HTTP on one gateway (in-process limiter) over the scripted engine."""
import threading

import pytest
import requests

from cbgate.errors import ModelRequestFailed
from tests.support.chat import ask
from tests.support.gateway import start_in_thread
from tests.support.wait import wait_until


def set_limits(gw, **limits) -> None:
    gw.admin.set_env_limits(gw.env_id, limits)
    gw.wait_for_snapshot()


def code(r: requests.Response) -> str | None:
    return r.json().get("code") if r.headers.get("content-type", "").startswith("application/json") else None


def test_sixth_concurrent_request_is_refused_at_once_and_slots_come_back(gateway):
    # each answer takes ~3 s, far longer than the five clients take to be admitted on a busy machine, so all
    # five still hold their slots when the sixth comes (at 0.5 s, the first had finished under a CPU hog)
    gateway.engine.script(token_delay=0.2)
    results: list[int] = []

    def slow():
        r = gateway.chat(ask("a b c d e f g h i j k l m n o p", max_tokens=16))
        results.append(r.status_code)

    clients = [threading.Thread(target=slow) for _ in range(5)]
    for c in clients:
        c.start()
    gateway.wait_admitted(5)  # the first is generating, the others wait for the engine
    refused = gateway.chat(ask())  # refused, not queued behind seconds of slow answers
    assert refused.status_code == 429 and code(refused) == "EXCEED_CONCURRENT_REQUEST_LIMIT"
    for c in clients:
        c.join(60)
    assert results == [200] * 5
    gateway.engine.script(token_delay=0.0)
    assert [gateway.chat(ask()).status_code for _ in range(7)] == [200] * 7  # every slot was released


def test_slot_is_released_when_the_client_drops_a_stream_mid_way(gateway):
    set_limits(gateway, concurrency=1)
    gateway.engine.script(token_delay=0.05)
    with gateway.chat(ask("one two three four five six seven eight nine ten " * 4, stream=True),
                      stream=True) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(line for line in lines if line.startswith(b"data: "))
        busy = gateway.chat(ask())
        assert busy.status_code == 429 and code(busy) == "EXCEED_CONCURRENT_REQUEST_LIMIT"
    # the connection is closed mid-stream: the slot frees although the answer had far to go
    wait_until(lambda: gateway.chat(ask("x", max_tokens=2)).status_code == 200, "the dropped stream's slot")


class FailingProvider:
    name = "embedded-gemma"

    async def complete(self, call):
        raise ModelRequestFailed("the deployment is down")

    def stream(self, call, outcome):
        async def chunks():
            raise ModelRequestFailed("the deployment is down")
            yield  # pragma: no cover - makes this an async generator
        return chunks()

    async def close(self):
        pass


def test_slot_is_released_when_the_request_fails(tmp_path):
    gw = start_in_thread(tmp_path / "data", overrides={"embedded-gemma": FailingProvider()})
    try:
        set_limits(gw, concurrency=1)
        statuses = [gw.chat(ask(stream=i % 2 == 1)).status_code for i in range(4)]
        assert statuses == [502] * 4  # never 429: each failure gave its slot back
    finally:
        gw.stop()


def test_requests_per_minute_refuse_with_retry_after(gateway):
    set_limits(gateway, rpm=3)
    assert [gateway.chat(ask()).status_code for _ in range(3)] == [200] * 3
    refused = gateway.chat(ask())
    assert refused.status_code == 429 and code(refused) == "EXCEED_RATELIMIT"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_tokens_per_minute_count_the_real_usage_and_refuse_with_retry_after(gateway):
    set_limits(gateway, tpm=150)
    # reserves ~60 tokens, settles to the ~10 it used, so the next reservation still fits
    assert gateway.chat(ask("hi", max_tokens=50)).status_code == 200
    assert gateway.chat(ask("hi", max_tokens=100)).status_code == 200
    refused = gateway.chat(ask("hi", max_tokens=200))
    assert refused.status_code == 429 and code(refused) == "EXCEED_RATELIMIT"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_token_quota_reserves_settles_and_runs_out(gateway):
    set_limits(gateway, token_quota=200)
    too_big = gateway.chat(ask("hi", max_tokens=500))  # its reservation alone is over the quota
    assert too_big.status_code == 429 and code(too_big) == "EXCEED_TOKEN_QUOTA_LIMIT"
    used = 0
    for _ in range(40):
        r = gateway.chat(ask("hello there", max_tokens=30))
        if r.status_code != 200:
            break
        used += r.json()["usage"]["total_tokens"]
    assert r.status_code == 429 and code(r) == "EXCEED_TOKEN_QUOTA_LIMIT"
    # settled to the real usage: far more answers fit than 200 / (reservation of ~40) = 5
    assert used <= 200 and used > 200 - 45


def test_limits_off_lets_everything_through(gateway):
    set_limits(gateway, concurrency=None, rpm=None, tpm=None, token_quota=None)
    assert gateway.admin.env_limits(gateway.env_id) == {
        "concurrency": None, "rpm": None, "tpm": None, "token_quota": None}
    assert [gateway.chat(ask()).status_code for _ in range(3)] == [200] * 3


@pytest.mark.parametrize("bad", [-1, "5", 2.5, True])
def test_bad_limit_values_are_refused(gateway, bad):
    with pytest.raises(Exception, match="whole number"):
        gateway.admin.set_env_limits(gateway.env_id, {"rpm": bad})


def test_publishable_keys_get_their_own_lower_concurrency(gateway):
    _, publishable = gateway.admin.create_key(gateway.env_id, "publishable")
    gateway.wait_for_snapshot()
    gateway.engine.script(token_delay=0.03)
    results: list[int] = []
    clients = [threading.Thread(target=lambda: results.append(
        gateway.chat(ask("a b c d e f g h i j k l m n o p", max_tokens=16), key=publishable).status_code))
        for _ in range(2)]
    for c in clients:
        c.start()
    gateway.wait_admitted(2)
    refused = gateway.chat(ask(), key=publishable)
    assert refused.status_code == 429 and code(refused) == "EXCEED_CONCURRENT_REQUEST_LIMIT"
    assert gateway.chat(ask("x", max_tokens=2)).status_code == 200  # the server key's share is separate
    for c in clients:
        c.join(30)
    assert results == [200, 200]


def test_a_restarted_gateway_remembers_the_quota_used_by_the_ledger(tmp_path):
    first = start_in_thread(tmp_path / "data")
    set_limits(first, token_quota=100)
    used = sum(first.chat(ask("hello there", max_tokens=10)).json()["usage"]["total_tokens"] for _ in range(5))
    assert 40 < used < 100
    first.stop()  # shutdown flushes the ledger
    again = start_in_thread(tmp_path / "data")
    try:
        # a fresh counter would admit this (it reserves ~70 of 100), the ledger's says it cannot fit
        refused = again.chat(ask("hi", max_tokens=60), key=first.key)
        assert refused.status_code == 429 and code(refused) == "EXCEED_TOKEN_QUOTA_LIMIT"
        assert again.chat(ask("hi", max_tokens=1), key=first.key).status_code == 200
    finally:
        again.stop()
