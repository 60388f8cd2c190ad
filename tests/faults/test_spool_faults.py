"""A spool that cannot take records (a full disk, a directory gone) makes the gateway refuse new
requests with 503 before they are served: every answer it gives is billed, and it serves again once
the spool takes records."""
from __future__ import annotations

import shutil
import time

import pytest

from tests.faults.figures import count
from tests.faults.rig import chat, records_of, upstream_gateway
from tests.faults.tmpfs import fill, small_tmpfs
from tests.support.fake_upstream import Counters, start_fake_upstream
from tests.support.postgres import set_reachable


@pytest.fixture(scope="module")
def fake():
    server = start_fake_upstream()
    yield server
    server.stop()


def until(gateway, status: int, most: int = 3000, ceiling: float = 60.0) -> list:
    """Requests, one after another, until one gets `status` (each is served or refused, never lost).
    Bounded by a count and a generous time: on a loaded machine the drain's backoff (up to 5 s) can outlast
    any fixed number of quick refusals, so a refused request waits a moment before the next one."""
    answers = []
    deadline = time.monotonic() + ceiling
    while len(answers) < most and time.monotonic() < deadline:
        answers.append(chat(gateway))
        if answers[-1].status_code == status:
            return answers
        if answers[-1].status_code == 503:
            time.sleep(0.05)  # the gateway's state changes with the drain, not with our requests
    raise AssertionError(f"no {status} in {len(answers)} requests: {sorted({r.status_code for r in answers})}")


def check_every_answer_billed(fault: str, gateway, answers: list, fake) -> None:
    served = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code != 200]
    assert all(r.status_code == 503 and r.json()["code"] == "SYS_ERR" for r in refused)
    assert fake.server.stats.chat_requests == len(served)  # nothing refused reached the upstream
    ids = {r.headers["x-request-id"] for r in served}
    figures = count(fault, ids, records_of(gateway, ids), served=fake.server.stats.completion_tokens)
    assert (figures.expected, figures.got, figures.duplicated) == (len(served), len(served), 0)
    assert figures.billed == figures.served


def test_a_full_spool_refuses_before_serving_and_bills_every_answer(tmp_path, fake):
    fake.server.stats = Counters()
    with small_tmpfs(tmp_path / "data" / "spool", "256k") as spool_dir:
        gateway = upstream_gateway(tmp_path / "data", fake.url)
        try:
            answers = [chat(gateway) for _ in range(3)]
            ballast = fill(spool_dir, leave=6000)
            answers += until(gateway, 503)  # the disk filled: refused, not served unbilled
            answers += [chat(gateway) for _ in range(5)]
            ballast.unlink()
            answers += until(gateway, 200)  # room again: served again
            assert sum(r.status_code == 503 for r in answers) >= 1
            check_every_answer_billed("spool disk full", gateway, answers, fake)
        finally:
            gateway.stop()


def test_a_spool_directory_that_is_gone_refuses_until_it_can_be_made_again(tmp_path, fake):
    fake.server.stats = Counters()
    gateway = upstream_gateway(tmp_path / "data", fake.url)
    spool_dir = tmp_path / "data" / "spool"
    try:
        answers = [chat(gateway) for _ in range(3)]
        spool_dir.rename(tmp_path / "spool-unmounted")  # what an unmount leaves: the path names another place
        spool_dir.write_text("not a directory")  # ... where nothing can be written
        answers += until(gateway, 503)
        answers += [chat(gateway) for _ in range(3)]
        spool_dir.unlink()  # the place can be made again
        answers += until(gateway, 200)
        answers += [chat(gateway) for _ in range(3)]
        check_every_answer_billed("spool directory unwritable", gateway, answers, fake)
    finally:
        gateway.stop()
    # after a restart too: the spool is where the new process looks, and it serves and bills
    again = upstream_gateway(tmp_path / "data", fake.url)
    try:
        answer = chat(again, gateway.key)
        assert answer.status_code == 200
        assert len(records_of(gateway, {answer.headers["x-request-id"]})) == 1
    finally:
        again.stop()
    shutil.rmtree(tmp_path / "spool-unmounted", ignore_errors=True)


def test_a_spool_at_its_cap_while_the_database_is_away_refuses_then_drains_and_serves(tmp_path, fake,
                                                                                      fresh_postgres_url):
    """No root needed: the cap (CBGATE_SPOOL_MAX_BYTES) fills while the database does not take records."""
    fake.server.stats = Counters()
    gateway = upstream_gateway(tmp_path / "data", fake.url, env={"CBGATE_DATABASE_URL": fresh_postgres_url,
                                                                 "CBGATE_SPOOL_MAX_BYTES": "40000"})
    try:
        answers = [chat(gateway) for _ in range(3)]
        set_reachable(fresh_postgres_url, False)
        try:
            answers += until(gateway, 503)  # the spool holds its cap of undrained records
            answers += [chat(gateway) for _ in range(3)]
        finally:
            set_reachable(fresh_postgres_url, True)
        answers += until(gateway, 200)  # drained into the database: room again
        check_every_answer_billed("spool at its cap, database away", gateway, answers, fake)
    finally:
        gateway.stop()
