"""Model groups through the admin API: a custom group on the fake upstream, group and model switches,
a vendor group's key, deletion; secrets go in and never come out."""
import pytest

from tests.support.admin_plane import make_cast
from tests.support.fake_upstream import start_fake_upstream
from tests.support.gateway import start_in_thread

SECRET = "sk-canary-admin-api-group-51c2"
ENV = {"CBGATE_UPSTREAM_ALLOW": "127.0.0.1", "CBGATE_SECRET_KEY": "operator-passphrase-for-admin-tests"}


@pytest.fixture
def fake():
    fake = start_fake_upstream(require_key=SECRET)
    yield fake
    fake.stop()


@pytest.fixture
def cast(tmp_path):
    gw = start_in_thread(tmp_path / "data", env=ENV)
    yield make_cast(gw)
    gw.stop()


def groups_path(cast, env=None) -> str:
    return f"/admin/v1/envs/{env or cast.gw.env_id}/groups"


def test_server_key_adds_a_custom_group_and_calls_it(cast, fake):
    body = {"name": "mine", "base_url": fake.url, "models": ["m-one", "m-two"], "api_key": SECRET}
    made = cast.call("POST", groups_path(cast), cast.server, json=body)
    assert made.status_code == 201, made.text
    assert made.json()["type"] == "custom" and made.json()["has_key"] is True
    assert [m["name"] for m in made.json()["models"]] == ["m-one", "m-two"]
    listing = cast.call("GET", groups_path(cast), cast.server)
    assert SECRET not in listing.text and SECRET not in made.text
    names = [g["name"] for g in listing.json()["data"]]
    assert names[0] == "cloudbase" and "mine" in names
    reply = cast.gw.chat({"model": "m-one", "messages": [{"role": "user", "content": "hi"}]}, group="mine")
    assert reply.status_code == 200, reply.text

    off = cast.call("PUT", groups_path(cast) + "/mine", cast.server, json={"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False
    refused = cast.gw.chat({"model": "m-one", "messages": [{"role": "user", "content": "hi"}]}, group="mine")
    assert refused.status_code == 403 and refused.json()["code"] == "AI_MODEL_DISABLED"

    gone = cast.call("DELETE", groups_path(cast) + "/mine", cast.server)
    assert gone.status_code == 200
    assert "mine" not in [g["name"] for g in cast.call("GET", groups_path(cast), cast.server).json()["data"]]


def test_a_failed_creation_check_is_a_cloudbase_error(cast, fake):
    body = {"name": "wrongkey", "base_url": fake.url, "models": ["m"], "api_key": "sk-wrong"}
    resp = cast.call("POST", groups_path(cast), cast.operator, json=body)
    assert resp.status_code == 502 and resp.json()["code"] == "AI_MODEL_REQUEST_FAILED"
    assert "sk-wrong" not in resp.text


def test_vendor_group_key_is_set_and_never_shown(cast):
    resp = cast.call("PUT", groups_path(cast) + "/deepseek", cast.server, json={"api_key": "sk-vendor-secret-123"})
    assert resp.status_code == 200 and resp.json()["has_key"] is True and "sk-vendor" not in resp.text
    assert "sk-vendor" not in cast.call("GET", groups_path(cast), cast.operator).text


def test_other_envs_and_bad_input_are_refused(cast, fake):
    body = {"name": "theirs", "base_url": fake.url, "models": ["m"], "check": False}
    other = cast.call("POST", groups_path(cast, cast.other_env), cast.server, json=body)
    assert other.status_code == 403 and other.json()["code"] == "PERMISSION_DENIED"
    for bad in ({"name": "cloudbase-x", "base_url": fake.url, "models": ["m"]}, {"name": "x", "models": ["m"]},
                {"name": "x", "base_url": fake.url, "models": "m"},
                {"name": "x", "base_url": fake.url, "models": ["m"], "check": False, "timeouts": 5},
                {"name": "x", "base_url": fake.url, "models": ["m"], "check": False, "timeouts": {"total": 0}}):
        resp = cast.call("POST", groups_path(cast), cast.server, json=bad)
        assert resp.status_code == 400 and resp.json()["code"] == "INVALID_PARAM", bad
    catalog = cast.call("PUT", groups_path(cast) + "/cloudbase", cast.operator, json={"enabled": False})
    assert catalog.status_code == 400
    missing = cast.call("DELETE", groups_path(cast) + "/nope", cast.operator)
    assert missing.status_code == 404 and missing.json()["code"] == "AI_MODEL_NOT_FOUND"
