"""Stored responses in the store: scoped by environment, gone once expired or deleted."""
from __future__ import annotations

import time

from cbgate.store.db import Store
from cbgate.store.responses import StoredResponse, delete_response, load_response, purge_expired, save_response


def stored(response_id: str, env_id: str, expires_at: float) -> StoredResponse:
    return StoredResponse(response_id, env_id, "m", None, time.time(), expires_at, {"id": response_id},
                          [{"type": "message", "role": "user", "content": "hi"}], [{"role": "user", "content": "hi"}])


def test_scoped_expired_and_deleted(tmp_path):
    store = Store(str(tmp_path / "db.sqlite"))
    store.migrate()
    now = time.time()
    save_response(store, stored("resp_a", "env-a", now + 60))
    save_response(store, stored("resp_old", "env-a", now - 1))
    assert load_response(store, "env-a", "resp_a", now).context == [{"role": "user", "content": "hi"}]
    assert load_response(store, "env-b", "resp_a", now) is None  # another environment's
    assert load_response(store, "env-a", "resp_old", now) is None  # expired: invisible at once
    assert purge_expired(store, now) == 1
    assert not delete_response(store, "env-b", "resp_a")
    assert delete_response(store, "env-a", "resp_a") and load_response(store, "env-a", "resp_a", now) is None
    store.close()
