"""A gateway on the real PostgreSQL while the database goes away: requests keep their ledger records,
and authentication fails closed once the tenant snapshot is too old to trust."""
import time

import pytest

from tests.support.chat import ask
from tests.support.gateway import start_in_thread
from tests.support.ledger import wait_for_records
from tests.support.postgres import set_reachable
from tests.support.wait import wait_until


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


@pytest.mark.timing
def test_authentication_fails_closed_when_the_store_is_gone_too_long(fresh_postgres_url, tmp_path):
    gw = start_in_thread(tmp_path / "data", env={"CBGATE_DATABASE_URL": fresh_postgres_url,
                                                 "CBGATE_SNAPSHOT_MAX_AGE": "2"})
    served(gw, "warm up")
    outage = time.monotonic()
    set_reachable(fresh_postgres_url, False)
    refusals = []

    def refused() -> bool:
        r = gw.chat(ask("later"))
        refusals.append(r)
        return r.status_code != 200
    try:
        served(gw, "still trusted")  # within the bound, the last snapshot answers
        wait_until(refused, "authentication to fail closed")
        refused_after = time.monotonic() - outage
        r = refusals[-1]
        assert r.status_code == 503 and r.json()["code"] == "SYS_ERR" and r.headers["retry-after"]
        # The bound is 2 s from the store's last answer, which came up to a refresh (0.5 s) before the outage,
        # or more when a busy machine delayed the poll: so at least 1 s of trust after the outage began.
        assert 1.0 < refused_after < 10
        assert gw.key not in r.text
    finally:
        set_reachable(fresh_postgres_url, True)
    wait_until(lambda: gw.chat(ask("back")).status_code == 200, "the gateway to trust its store again")
    gw.stop()
