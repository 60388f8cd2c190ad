"""Ledger rows: whatever a record carries, the database takes it, and what it stores reads back as sent."""
from __future__ import annotations

import time

from cbgate.store.usage import UsageRecord, insert_records, recent_requests
from cbgate.text import MAX_SAFE_INTEGER
from tests.store.test_ledger_writer import store  # noqa: F401  (fixture: a migrated SQLite store)


def test_rows_the_database_would_refuse_are_made_storable_and_replays_count_once(store):  # noqa: F811
    odd = UsageRecord("req-odd", "team-a", None, "cloudbase", "model\x00name", code="CODE\x00", prompt_tokens=-5,
                      completion_tokens=MAX_SAFE_INTEGER * 4, images=True, created_at=86399.5)
    plain = UsageRecord("req-plain", "team-a", "key-1", "cloudbase", "m", "dep", stream=True, prompt_tokens=23,
                        completion_tokens=12, latency_ms=4.25, ttft_ms=1.5, created_at=time.time())
    insert_records(store, [odd, plain])
    insert_records(store, [odd, plain])  # a replayed spool: skipped by request id
    rows = {r.request_id: r for r in recent_requests(store, "team-a")}
    assert set(rows) == {"req-odd", "req-plain"}
    assert rows["req-odd"].model == "model\ufffdname" and rows["req-odd"].code == "CODE\ufffd"
    assert (rows["req-odd"].prompt_tokens, rows["req-odd"].completion_tokens) == (0, MAX_SAFE_INTEGER)
    assert rows["req-odd"].images == 1
    assert rows["req-plain"] == plain
    assert odd.row()["day"] == "1970-01-01" and plain.row()["day"] == time.strftime("%Y-%m-%d", time.gmtime())
