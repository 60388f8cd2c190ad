"""The usage ledger as an operator sees it: one record per request, however the request ended."""
import threading
import time

import requests

from tests.support.chat import EMBEDDED_MODEL, ask
from tests.support.gateway import make_admin, start_in_thread
from tests.support.ledger import DroppedStream, ledger_rows, wait_for_records
from tests.support.sse import read_events
from tests.support.wait import wait_until

MODEL = EMBEDDED_MODEL


def key_id(gateway) -> str:
    return gateway.admin.list_keys(gateway.env_id)[0].id


def test_non_streaming_request_is_recorded_with_its_usage(gateway):
    r = gateway.chat(ask("hello ledger"))
    assert r.status_code == 200
    [record] = wait_for_records(gateway.admin.store, gateway.env_id, 1)
    usage = r.json()["usage"]
    assert record.request_id == r.headers["x-request-id"]
    assert (record.prompt_tokens, record.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert record.key_id == key_id(gateway) and record.group_name == "cloudbase" and record.model == MODEL
    assert record.deployment == "embedded-gemma" and not record.stream and not record.estimated
    assert record.status == 200 and record.code is None and not record.disconnected
    assert record.latency_ms > 0 and record.ttft_ms is None
    assert abs(record.created_at - time.time()) < 30


def test_streaming_request_is_recorded_with_time_to_first_token(gateway):
    gateway.engine.script(token_delay=0.01)
    r = gateway.chat(ask("stream me please", stream=True, stream_options={"include_usage": True}), stream=True)
    events = read_events(r)
    assert events[-1] == "[DONE]"
    usage = events[-2]["usage"]
    [record] = wait_for_records(gateway.admin.store, gateway.env_id, 1)
    assert record.stream and record.status == 200 and record.code is None and not record.disconnected
    assert (record.prompt_tokens, record.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert 0 < record.ttft_ms < record.latency_ms
    assert record.latency_ms >= usage["completion_tokens"] * 10 * 0.9  # the stream took its time


def test_failed_requests_are_recorded_with_their_code(gateway):
    gateway.admin.set_model(gateway.env_id, "cloudbase", MODEL, False)
    gateway.wait_for_snapshot()
    r = gateway.chat(ask("hi"))
    assert r.status_code == 403 and r.json()["code"] == "AI_MODEL_DISABLED"
    streamed = gateway.chat(ask("hi", stream=True))
    assert streamed.status_code == 403
    failed = wait_for_records(gateway.admin.store, gateway.env_id, 2, where=lambda rec: rec.code is not None)
    assert len(failed) == 2 and {rec.stream for rec in failed} == {False, True}
    assert all(rec.status == 403 and rec.prompt_tokens == rec.completion_tokens == 0 for rec in failed)
    assert {rec.request_id for rec in failed} >= {r.headers["x-request-id"], streamed.headers["x-request-id"]}


def test_a_dropped_stream_is_billed_for_what_was_generated(gateway):
    gateway.engine.script(token_delay=0.03)
    before = gateway.engine.generated()  # the token the engine evaluated to show it was ready
    stream = DroppedStream(gateway.chat_url(), gateway.key, ask("word " * 100, stream=True))
    got = stream.read_events(6)  # the role chunk and five pieces of text
    stream.drop()
    [record] = wait_for_records(gateway.admin.store, gateway.env_id, 1)
    assert record.request_id == stream.request_id
    assert record.disconnected and record.stream and record.status == 200 and record.code is None
    generated = gateway.engine.generated()
    made = generated - before
    # all that reached the gateway (the engine may have made a token or two while the cancel travelled),
    # not all it would have made
    assert len(got) - 1 <= record.completion_tokens <= made <= record.completion_tokens + 3 < 100
    assert record.prompt_tokens > 0 and not record.estimated
    wait_until(lambda: gateway.engine.stats()["running"] == 0, "the engine to stop the sequence")
    assert gateway.engine.generated() - before <= record.completion_tokens + 3  # and it stopped there


def test_records_are_flushed_at_shutdown_and_spool_is_cleared(tmp_path):
    gw = start_in_thread(tmp_path / "data")
    ids = [gw.chat(ask(f"request {i}")).headers["x-request-id"] for i in range(5)]
    gw.stop()  # before the next batch is due
    admin = make_admin(tmp_path / "data")
    rows = ledger_rows(admin.store, gw.env_id)
    assert sorted(r.request_id for r in rows) == sorted(ids)
    assert list((tmp_path / "data" / "spool").iterdir()) == []  # drained, so nothing left to replay
    admin.store.close()


def test_stream_finishing_during_shutdown_is_completed_and_recorded(tmp_path):
    gw = start_in_thread(tmp_path / "data")
    gw.engine.script(token_delay=0.02)
    r = gw.chat(ask("word " * 40, stream=True), stream=True)
    lines = r.iter_lines()
    next(lines)
    stopper = threading.Thread(target=gw.stop)
    stopper.start()  # like SIGTERM: stop accepting, let the stream finish, then flush
    rest = b"\n".join(lines)
    stopper.join()
    assert rest.rstrip().endswith(b"data: [DONE]")
    admin = make_admin(tmp_path / "data")
    [record] = ledger_rows(admin.store, gw.env_id)
    assert record.status == 200 and not record.disconnected and record.completion_tokens > 40
    admin.store.close()


def test_usage_of_other_environments_is_not_mixed_in(gateway):
    other_env = gateway.admin.create_env("team-other")
    _, other_key = gateway.admin.create_key(other_env)
    gateway.wait_for_snapshot()
    theirs = gateway.chat(ask("theirs"), key=other_key)
    mine = gateway.chat(ask("mine"))
    assert theirs.status_code == mine.status_code == 200
    # each request is billed to the env of the key that made it, and to no other
    assert [r.request_id for r in wait_for_records(gateway.admin.store, gateway.env_id, 1)] == [
        mine.headers["x-request-id"]]
    assert [r.request_id for r in wait_for_records(gateway.admin.store, other_env, 1)] == [
        theirs.headers["x-request-id"]]
    summary = gateway.admin.usage_summary(gateway.env_id)
    assert summary["requests"] == 1 and summary["completion_tokens"] == mine.json()["usage"]["completion_tokens"]
    assert requests.get(gateway.url + "/healthz").ok
