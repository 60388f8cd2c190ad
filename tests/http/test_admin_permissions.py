"""Who may do what on the admin API, over real HTTP: operator, own env, other env, publishable, no key,
bad key. Every refusal is a CloudBase error body."""
import time

import pytest

from tests.support.admin_plane import make_cast
from tests.support.wait import wait_until


@pytest.fixture
def cast(gateway):
    return make_cast(gateway)


def assert_refused(resp, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == code and body["message"] and body["requestId"]


ENV_READS = ["/keys", "/groups", "/limits", "/usage", "/usage/series", "/requests", ""]


def test_operator_sees_and_manages_every_environment(cast):
    envs = cast.call("GET", "/admin/v1/envs", cast.operator).json()["data"]
    assert {cast.gw.env_id, cast.other_env} <= {e["id"] for e in envs}
    for env in (cast.gw.env_id, cast.other_env):
        for tail in ENV_READS:
            assert cast.call("GET", f"/admin/v1/envs/{env}{tail}", cast.operator).status_code == 200, tail
    created = cast.call("POST", "/admin/v1/envs", cast.operator, json={})
    assert created.status_code == 201 and created.json()["id"].startswith("env-")
    assert cast.call("GET", "/admin/v1/operator/tokens", cast.operator).status_code == 200
    me = cast.call("GET", "/admin/v1/me", cast.operator).json()
    assert me["kind"] == "operator" and created.json()["id"] in me["envs"]


def test_server_key_manages_its_own_environment_only(cast):
    own, other = cast.gw.env_id, cast.other_env
    envs = cast.call("GET", "/admin/v1/envs", cast.server).json()["data"]
    assert [e["id"] for e in envs] == [own]
    assert cast.call("GET", "/admin/v1/me", cast.server).json() == {"kind": "server", "env": own, "envs": [own], "busiest": None}
    for tail in ENV_READS:
        assert cast.call("GET", f"/admin/v1/envs/{own}{tail}", cast.server).status_code == 200, tail
        assert_refused(cast.call("GET", f"/admin/v1/envs/{other}{tail}", cast.server), 403, "PERMISSION_DENIED")
    made = cast.call("POST", f"/admin/v1/envs/{own}/keys", cast.server, json={"name": "ci"})
    assert made.status_code == 201
    assert_refused(cast.call("POST", f"/admin/v1/envs/{other}/keys", cast.server, json={}), 403, "PERMISSION_DENIED")
    switch = {"json": {"enabled": False}}
    assert_refused(cast.call("PUT", f"/admin/v1/envs/{other}/groups/cloudbase/models/gemma-3-270m", cast.server,
                             **switch), 403, "PERMISSION_DENIED")


def test_server_key_cannot_touch_another_envs_key_through_its_own_env(cast):
    theirs = cast.call("GET", f"/admin/v1/envs/{cast.other_env}/keys", cast.operator).json()["data"][0]["id"]
    resp = cast.call("DELETE", f"/admin/v1/envs/{cast.gw.env_id}/keys/{theirs}", cast.server)
    assert_refused(resp, 400, "INVALID_PARAM")
    assert cast.gw.chat({"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]},
                        key=cast.other_server).status_code == 200  # still alive


def test_server_key_may_not_touch_operator_settings(cast):
    assert_refused(cast.call("GET", "/admin/v1/operator/tokens", cast.server), 403, "PERMISSION_DENIED")
    assert_refused(cast.call("POST", "/admin/v1/operator/tokens", cast.server, json={}), 403, "PERMISSION_DENIED")
    assert_refused(cast.call("POST", "/admin/v1/envs", cast.server, json={"id": "mine-too"}), 403,
                   "PERMISSION_DENIED")


def test_limits_are_read_by_the_env_and_changed_by_the_operator_only(cast):
    path = f"/admin/v1/envs/{cast.gw.env_id}/limits"
    assert_refused(cast.call("PUT", path, cast.server, json={"rpm": 100000}), 403, "PERMISSION_DENIED")
    changed = cast.call("PUT", path, cast.operator, json={"rpm": 7, "token_quota": None})
    assert changed.status_code == 200 and changed.json()["rpm"] == 7 and changed.json()["token_quota"] is None
    assert cast.call("GET", path, cast.server).json() == changed.json()
    assert_refused(cast.call("PUT", path, cast.operator, json={"rpm": -1}), 400, "INVALID_PARAM")
    assert_refused(cast.call("PUT", path, cast.operator, json={"speed": 1}), 400, "INVALID_PARAM")


@pytest.mark.parametrize("path", ["/admin/v1/me", "/admin/v1/envs", "/admin/v1/envs/{env}/keys",
                                  "/admin/v1/envs/{env}/limits", "/admin/v1/envs/{env}/usage"])
def test_publishable_key_may_not_use_the_admin_api(cast, path):
    resp = cast.call("GET", path.format(env=cast.gw.env_id), cast.publishable)
    assert_refused(resp, 403, "PERMISSION_DENIED")


def test_no_key_and_bad_keys_are_refused(cast):
    path = f"/admin/v1/envs/{cast.gw.env_id}/keys"
    assert_refused(cast.call("GET", path, None), 401, "MISSING_CREDENTIALS")
    assert_refused(cast.call("GET", path, "cbsk_" + "x" * 43), 401, "INVALID_ACCESS_TOKEN")
    assert_refused(cast.call("GET", path, "cbop_" + "x" * 43), 401, "INVALID_ACCESS_TOKEN")


def test_expired_key_is_refused(cast):
    key = cast.call("POST", f"/admin/v1/envs/{cast.gw.env_id}/keys", cast.server,
                    json={"expires_days": 1 / 86400}).json()  # one second
    cast.gw.wait_for_snapshot()
    wait_until(lambda: time.time() > key["expires_at"], "the key's expiry")
    assert_refused(cast.call("GET", "/admin/v1/me", key["key"]), 401, "ACCESS_TOKEN_EXPIRED")


def test_revoked_tokens_stop_working_at_once(cast):
    ops = cast.call("GET", "/admin/v1/operator/tokens", cast.operator).json()["data"]
    made = cast.call("POST", "/admin/v1/operator/tokens", cast.operator, json={"name": "temp"}).json()
    assert made["token"].startswith("cbop_") and "digest" not in made
    assert cast.call("GET", "/admin/v1/me", made["token"]).status_code == 200
    assert cast.call("DELETE", f"/admin/v1/operator/tokens/{made['id']}", cast.operator).status_code == 200
    assert_refused(cast.call("GET", "/admin/v1/me", made["token"]), 401, "INVALID_ACCESS_TOKEN")
    assert made["id"] not in {t["id"] for t in ops}

    key = cast.call("POST", f"/admin/v1/envs/{cast.gw.env_id}/keys", cast.server, json={}).json()
    assert cast.call("DELETE", f"/admin/v1/envs/{cast.gw.env_id}/keys/{key['id']}", cast.server).status_code == 200
    assert_refused(cast.call("GET", "/admin/v1/me", key["key"]), 401, "INVALID_ACCESS_TOKEN")
