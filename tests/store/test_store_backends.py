"""Every store operation on both backends: the SQLite file and the real PostgreSQL, same schema and migrations."""
import calendar
import os
import threading
import time

import pytest

from cbgate.config import load_settings
from cbgate.core.admin import Admin
from cbgate.errors import InvalidParam
from cbgate.store import envs as stored_envs
from cbgate.store.db import Store
from cbgate.store.migrations import MIGRATIONS
from cbgate.store.usage import UsageRecord, insert_records

DAY = 86400


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "cbgate.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def admin(database_url, tmp_path):
    settings = load_settings(str(tmp_path / "data"), env={"CBGATE_DATABASE_URL": database_url})
    store = Store(settings.database_url)
    store.migrate()
    yield Admin(store, settings)
    store.close()


def unique_env(admin) -> str:
    return admin.create_env(f"team-{os.urandom(3).hex()}")


def record(env_id: str, model: str = "m1", key: str = "key-a", tokens=(10, 5), when: float | None = None,
           **extra) -> UsageRecord:
    return UsageRecord(os.urandom(12).hex(), env_id, key, "cloudbase", model, "dep", prompt_tokens=tokens[0],
                       completion_tokens=tokens[1], created_at=when or time.time(), **extra)


def test_migrations_run_once(admin):
    assert admin.store.migrate() == []


def test_replicas_migrating_at_once_apply_each_migration_once(fresh_postgres_url):
    stores = [Store(fresh_postgres_url) for _ in range(3)]
    applied: list[list[str]] = []
    threads = [threading.Thread(target=lambda s=s: applied.append(s.migrate())) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(a) for a in applied) == [0, 0, len(MIGRATIONS)]
    for s in stores:
        s.close()


def test_env_key_and_model_switch_operations(admin):
    before = admin.store.revision()
    env_id = unique_env(admin)
    assert stored_envs.env_exists(admin.store, env_id) and admin.store.revision() > before
    with pytest.raises(InvalidParam):
        admin.create_env(env_id)
    row, plain = admin.create_key(env_id, "publishable", expires_days=1, name="web")
    assert [k.id for k in admin.list_keys(env_id)] == [row.id] and plain not in repr(admin.list_keys(env_id))
    stored_envs.touch_keys(admin.store, {row.id: 123.0})
    assert admin.list_keys(env_id)[0].last_used_at == 123.0
    admin.revoke_key(row.id)
    assert admin.list_keys(env_id)[0].revoked_at is not None
    assert admin.revoke_key(row.id) is False  # already revoked: no error, nothing changes
    with pytest.raises(InvalidParam):
        admin.revoke_key("no-such-key")
    # A new environment records the catalog's switches: the default model on, Gemma off.
    switches = {(g, m): on for g, m, on in admin.list_models(env_id)}
    assert switches[("cloudbase", "smollm2-135m-instruct")] is True
    admin.set_model(env_id, "cloudbase", "gemma-3-270m", True)
    assert ("cloudbase", "gemma-3-270m", True) in admin.list_models(env_id)
    admin.set_model(env_id, "cloudbase", "gemma-3-270m", False)
    assert ("cloudbase", "gemma-3-270m", False) in admin.list_models(env_id)


def test_ledger_inserts_are_idempotent_on_the_request_id(admin):
    env_id = unique_env(admin)
    batch = [record(env_id) for _ in range(3)]
    insert_records(admin.store, batch)
    insert_records(admin.store, batch + batch[:1] + [record(env_id)])  # a replay, and one new record
    summary = admin.usage_summary(env_id)
    assert summary["requests"] == 4 and summary["total_tokens"] == 4 * 15


def test_a_batch_longer_than_a_statement_goes_in_whole_once(admin):
    """SQLite takes a batch 256 rows a statement, the last one filled up by repeating its last row."""
    env_id = unique_env(admin)
    batch = [record(env_id, tokens=(i, 1)) for i in range(259)]
    insert_records(admin.store, batch)
    insert_records(admin.store, batch[250:] + [record(env_id, tokens=(1000, 1))])  # a replay's tail, and one new
    summary = admin.usage_summary(env_id)
    assert summary["requests"] == 260 and summary["prompt_tokens"] == sum(range(259)) + 1000


def test_usage_summary_by_model_key_and_day(admin):
    env_id = unique_env(admin)
    now = time.time()
    insert_records(admin.store, [
        record(env_id, "m1", "key-a", (10, 5), now), record(env_id, "m1", "key-b", (1, 1), now),
        record(env_id, "m2", "key-a", (100, 50), now - 3 * DAY),
        record(env_id, "m2", "key-a", (0, 0), now, code="AI_MODEL_DISABLED", status=403),
        record(unique_env(admin), "m1", "key-a", (1000, 1000), now),  # another env's usage
    ])
    total = admin.usage_summary(env_id)
    assert (total["requests"], total["errors"], total["prompt_tokens"], total["completion_tokens"],
            total["total_tokens"], total["rows"]) == (4, 1, 111, 56, 167, [])
    by_model = admin.usage_summary(env_id, by="model")["rows"]
    assert [(r["model"], r["requests"], r["total_tokens"]) for r in by_model] == [("m1", 2, 17), ("m2", 2, 150)]
    by_key = admin.usage_summary(env_id, by="key")["rows"]
    assert [(r["key"], r["total_tokens"]) for r in by_key] == [("key-a", 165), ("key-b", 2)]
    by_day = admin.usage_summary(env_id, by="day")["rows"]
    assert [r["total_tokens"] for r in by_day] == [150, 17]
    assert by_day[1]["day"] == time.strftime("%Y-%m-%d", time.gmtime(now))
    recent = admin.usage_summary(env_id, since=now - DAY, by="model")
    assert recent["total_tokens"] == 17 and [r["model"] for r in recent["rows"]] == ["m1", "m2"]
    series = admin.usage_series(env_id)
    assert [(s["model"], s["total_tokens"]) for s in series] == [("m2", 150), ("m1", 17), ("m2", 0)]
    newest = admin.recent_requests(env_id, limit=2)
    assert len(newest) == 2 and all(r.created_at == now for r in newest)
    with pytest.raises(InvalidParam):
        admin.usage_summary(env_id, by="colour")


def test_one_keys_usage_in_a_month_by_model(admin):
    """"What did key X cost this month, by model": one key, from the month's first second up to the next's."""
    env_id = unique_env(admin)
    month = calendar.timegm((2026, 11, 1, 0, 0, 0))  # 2026-11-01T00:00Z
    december = month + 30 * DAY
    insert_records(admin.store, [
        record(env_id, "m1", "key-a", (10, 5), month), record(env_id, "m2", "key-a", (100, 50), december - 1),
        record(env_id, "m1", "key-a", (7, 7), december),  # next month
        record(env_id, "m1", "key-a", (9, 9), month - 1),  # the month before
        record(env_id, "m1", "key-b", (1, 1), month + DAY),  # another key
    ])
    november = admin.usage_summary(env_id, month, "model", until=december, key_id="key-a")
    assert november["total_tokens"] == 165 and (november["key"], november["until"]) == ("key-a", december)
    assert [(r["model"], r["total_tokens"]) for r in november["rows"]] == [("m1", 15), ("m2", 150)]
    assert [(s["model"], s["total_tokens"]) for s in admin.usage_series(env_id, month, until=december,
                                                                        key_id="key-b")] == [("m1", 2)]
    assert admin.usage_summary(env_id, key_id="no-such-key")["requests"] == 0
