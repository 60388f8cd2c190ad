"""A gateway on the real PostgreSQL while the database goes away: requests keep their ledger records,
and authentication fails closed once the tenant snapshot is too old to trust."""
import time

from tests.support.gateway import start_in_thread
from tests.support.ledger import wait_for_records
from tests.support.postgres import set_reachable

MODEL = "gemma-3-270m"


def ask(text: str, **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def served(gw, text: str, key: str | None = None, **extra) -> str:
    r = gw.chat(ask(text, **extra), key=key)
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"]


def test_records_made_during_an_outage_reach_the_ledger_once_it_returns(fresh_postgres_url, tmp_path):
    env = {"CBGATE_DATABASE_URL": fresh_postgres_url}
    gw = start_in_thread(tmp_path / "data", env=env)
    ids = [served(gw, f"before {i}") for i in range(3)]
    set_reachable(fresh_postgres_url, False)
    try:
        ids += [served(gw, f"during {i}", stream=i % 2 == 1) for i in range(4)]  # the last snapshot serves
        gw.stop()  # and the replica stops before the database is back: its spool stays behind
    finally:
        set_reachable(fresh_postgres_url, True)
    again = start_in_thread(tmp_path / "data", env=env)  # replays the spool at startup
    ids.append(served(again, "after", key=gw.key))
    rows = wait_for_records(again.admin.store, gw.env_id, len(ids))
    assert sorted(r.request_id for r in rows) == sorted(ids)  # every one, none twice
    assert all(r.status == 200 and r.completion_tokens > 0 for r in rows)
    again.stop()


def test_authentication_fails_closed_when_the_store_is_gone_too_long(fresh_postgres_url, tmp_path):
    gw = start_in_thread(tmp_path / "data", env={"CBGATE_DATABASE_URL": fresh_postgres_url,
                                                 "CBGATE_SNAPSHOT_MAX_AGE": "2"})
    served(gw, "warm up")
    set_reachable(fresh_postgres_url, False)
    try:
        started = time.monotonic()
        served(gw, "still trusted")  # within the bound, the last snapshot answers
        while (r := gw.chat(ask("later"))).status_code == 200 and time.monotonic() - started < 15:
            time.sleep(0.2)
        refused_after = time.monotonic() - started
        assert r.status_code == 503 and r.json()["code"] == "SYS_ERR" and r.headers["retry-after"]
        assert 1.5 < refused_after < 5
        assert gw.key not in r.text
    finally:
        set_reachable(fresh_postgres_url, True)
    deadline = time.monotonic() + 10
    while (r := gw.chat(ask("back"))).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert r.status_code == 200
    gw.stop()
