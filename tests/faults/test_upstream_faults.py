"""Scripted upstream faults and clients that leave, against a gateway in this process: the ledger holds
one record per request, and bills by the one rule (README, "Billing"): nothing before the first byte,
what was produced after it."""
from __future__ import annotations

import threading

import pytest

from tests.faults.figures import count
from tests.support.catalog import write_catalog
from tests.support.chat import ask
from tests.support.fake_upstream import Counters, Reply, start_fake_upstream
from tests.support.gateway import start_in_thread
from tests.support.ledger import DroppedStream, wait_for_records

FAULTS = "tell me about faults please"
QUICK = {"connect": 1, "first_byte": 0.5, "idle": 0.5, "total": 3}


@pytest.fixture(scope="module")
def fake():
    server = start_fake_upstream()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, fake):
    data_dir = tmp_path_factory.mktemp("upstream-faults") / "data"
    write_catalog(data_dir, [
        {"name": "m-openai", "deployments": [{"kind": "openai", "base_url": fake.url, "name": "fake-openai",
                                              "timeouts": QUICK}]},
        {"name": "m-anthropic", "deployments": [{"kind": "anthropic", "base_url": fake.root,
                                                 "name": "fake-anthropic", "timeouts": QUICK}]},
    ], include_embedded=False)
    gw = start_in_thread(data_dir)
    yield gw
    gw.stop()


def rows_for(gateway, ids: set[str]):
    return [r for r in wait_for_records(gateway.admin.store, gateway.env_id, 10_000, timeout=0.5)
            if r.request_id in ids]


# Every way a request can fail before its first byte reaches the client: each bills 0 tokens.
BEFORE_FIRST_BYTE = [
    ("m-openai", False, Reply(status=500)),
    ("m-openai", True, Reply(status=400, error="bad request")),
    ("m-openai", False, Reply(body="{not json")),
    ("m-openai", True, Reply(first_byte_delay=2.0)),  # no first byte within its timeout: 504
    ("m-openai", True, Reply(reset=True)),
    ("m-openai", True, Reply(body="data: {not json")),  # a malformed answer where the first event belongs
    ("m-openai", True, Reply(role_chunk=False, malformed_after=0)),  # the first event is malformed
    ("m-openai", True, Reply(role_chunk=False, error_after=0)),  # the first event is an error object
    ("m-anthropic", True, Reply(status=529, error="overloaded")),
]


def test_failures_before_the_first_byte_are_recorded_and_bill_nothing(gateway, fake):
    ids = set()
    for model, stream, reply in BEFORE_FIRST_BYTE:
        fake.server.queue.clear()
        fake.script(*[reply] * 3)  # retries of a server error meet the same fault
        r = gateway.chat(ask(FAULTS, model, stream=stream))
        assert r.status_code in (400, 502, 504), (reply, r.status_code, r.text)
        assert r.json()["code"] in ("AI_MODEL_REQUEST_FAILED", "AI_MODEL_PARAM_INVALID")
        ids.add(r.headers["x-request-id"])
    fake.server.queue.clear()
    rows = wait_for_records(gateway.admin.store, gateway.env_id, len(ids), where=lambda r: r.request_id in ids)
    figures = count("upstream fails before the first byte", ids, rows, served=0)
    assert (figures.expected, figures.got, figures.duplicated) == (len(BEFORE_FIRST_BYTE),) * 2 + (0,)
    assert all(r.prompt_tokens == r.completion_tokens == 0 and r.code for r in rows)
    assert figures.billed == figures.served == 0


def test_failures_after_the_first_byte_bill_what_was_produced(gateway, fake):
    fake.server.stats = Counters()
    text = " ".join(["word"] * 20)  # a piece is about one token, as an upstream's usually is
    faults = [Reply(content=text, error_after=7), Reply(content=text, malformed_after=5),
              Reply(content=text, reset_after=9), Reply(content=text, stall_after=4)]
    ids = set()
    for reply in faults:
        fake.script(reply)
        r = gateway.chat(ask(FAULTS, "m-openai", stream=True), stream=True)
        events = [line for line in r.iter_lines() if line.startswith(b"data: ")]
        assert r.status_code == 200 and b"[DONE]" not in events[-1] and b'"code"' in events[-1]
        ids.add(r.headers["x-request-id"])
    rows = wait_for_records(gateway.admin.store, gateway.env_id, len(ids), where=lambda r: r.request_id in ids)
    figures = count("upstream fails mid-stream", ids, rows, served=fake.server.stats.completion_tokens)
    assert (figures.expected, figures.got, figures.duplicated) == (4, 4, 0)
    assert figures.served == 7 + 5 + 9 + 4
    # the upstream reported no usage for a broken stream: counted from the text, so close, not exact
    assert abs(figures.billed - figures.served) <= 0.3 * figures.served
    assert all(r.estimated for r in rows)
    assert all(r.status == 200 and r.code == "AI_MODEL_REQUEST_FAILED" and r.prompt_tokens > 0 for r in rows)


CLIENTS = 24


def test_clients_that_leave_mid_stream_each_get_one_record_billing_what_was_produced(gateway, fake):
    fake.server.stats = Counters()
    fake.default = Reply(content=" ".join(["word"] * 60), chunk_delay=0.01)
    received: dict[str, int] = {}
    lock = threading.Lock()
    slots = threading.Semaphore(3)  # within the environment's default concurrency of 5

    def client(i: int) -> None:
        with slots:
            stream = DroppedStream(gateway.chat_url(), gateway.key,
                                   ask(f"client {i} story", "m-openai", stream=True))
            events = stream.read_events(3 + i)  # the role chunk, then 2 + i content pieces
            stream.drop()
        with lock:
            received[stream.request_id] = len(events) - 1
    try:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        ids = set(received)
        rows = wait_for_records(gateway.admin.store, gateway.env_id, CLIENTS, where=lambda r: r.request_id in ids)
        upstream = fake.server.stats
        figures = count("clients leave mid-stream", ids, rows, served=upstream.completion_tokens)
    finally:
        fake.default = Reply()
    assert (figures.expected, figures.got, figures.duplicated) == (CLIENTS, CLIENTS, 0)
    assert all(r.disconnected and r.status == 200 for r in rows), [(r.disconnected, r.status, r.code) for r in rows]
    by_id = {r.request_id: r for r in rows}
    assert all(by_id[rid].completion_tokens >= got for rid, got in received.items())  # never less than received
    # what the upstream produced (it reports no usage for a stream cut short: counted from the text)
    assert figures.served <= figures.billed <= 1.3 * figures.served
