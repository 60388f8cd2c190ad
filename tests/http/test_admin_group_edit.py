"""Editing a custom group and testing a group through the admin API: bad edits are 4xx with a CloudBase
code, tenants cannot reach other environments' groups, and a failed test is a result, not an error."""
import pytest

from tests.http.test_admin_groups import ENV, SECRET, groups_path
from tests.support.admin_plane import make_cast
from tests.support.fake_upstream import start_fake_upstream
from tests.support.gateway import start_in_thread


@pytest.fixture
def setup(tmp_path):
    fake = start_fake_upstream(require_key=SECRET)
    gw = start_in_thread(tmp_path / "data", env=ENV)
    cast = make_cast(gw)
    made = cast.call("POST", groups_path(cast), cast.server, json={"name": "mine", "base_url": fake.url,
                                                                   "models": ["a"], "api_key": SECRET})
    assert made.status_code == 201, made.text
    yield cast, fake
    gw.stop()
    fake.stop()


@pytest.mark.parametrize("body,code", [
    ({}, "INVALID_PARAM"),
    ({"models": "a,b"}, "INVALID_PARAM"),
    ({"models": []}, "INVALID_PARAM"),
    ({"base_url": "ftp://x"}, "INVALID_PARAM"),
    ({"base_url": "http://user:pw@h/v1"}, "INVALID_PARAM"),
    ({"timeouts": {"total": -1}}, "INVALID_PARAM"),
    ({"timeouts": {"nope": 1}}, "INVALID_PARAM"),
    ({"timeouts": "30"}, "INVALID_PARAM"),
])
def test_bad_edits_are_refused_with_a_code(setup, body, code):
    cast, _ = setup
    refused = cast.call("PUT", groups_path(cast) + "/mine", cast.server, json=body)
    assert refused.status_code == 400 and refused.json()["code"] == code, refused.text
    assert "--" not in refused.json()["message"]  # API words, not CLI flags


def test_edit_then_test_and_no_reach_into_other_envs(setup):
    cast, fake = setup
    edited = cast.call("PUT", groups_path(cast) + "/mine", cast.server,
                       json={"models": ["a", "b"], "timeouts": {"connect": 2, "total": 20}})
    assert edited.status_code == 200, edited.text
    assert [m["name"] for m in edited.json()["models"]] == ["a", "b"]
    assert edited.json()["timeouts"] == {"connect": 2.0, "total": 20.0}
    cleared = cast.call("PUT", groups_path(cast) + "/mine", cast.server, json={"timeouts": None})
    assert cleared.json()["timeouts"] is None
    vendor = cast.call("PUT", groups_path(cast) + "/hunyuan", cast.server, json={"base_url": fake.url})
    assert vendor.status_code == 404 and vendor.json()["code"] == "AI_MODEL_NOT_FOUND"

    ok = cast.call("POST", groups_path(cast) + "/mine/test", cast.server)
    assert ok.status_code == 200 and ok.json()["ok"] is True and ok.json()["latency_ms"] >= 0
    cast.call("PUT", groups_path(cast) + "/mine", cast.server, json={"api_key": "sk-wrong"})
    failed = cast.call("POST", groups_path(cast) + "/mine/test", cast.server).json()
    assert failed["ok"] is False and failed["code"] == "AI_MODEL_REQUEST_FAILED" and "401" in failed["message"]
    assert "sk-wrong" not in failed["message"] and SECRET not in failed["message"]
    no_key = cast.call("POST", groups_path(cast) + "/hunyuan/test", cast.server)
    assert no_key.status_code == 400 and no_key.json()["code"] == "INVALID_PARAM"

    theirs = groups_path(cast, cast.other_env) + "/mine"
    for method, path in (("PUT", theirs), ("POST", theirs + "/test")):
        denied = cast.call(method, path, cast.server, json={"models": ["x"]})
        assert denied.status_code == 403 and denied.json()["code"] == "PERMISSION_DENIED"


@pytest.mark.parametrize("body", [
    {"api_key": "sk-new-secret", "enabled": "yes"},
    {"api_key": "sk-new-secret", "base_url": "ftp://x"},
    {"base_url": "http://example.com/v2", "timeouts": {"total": -1}},
    {"models": ["a", "b"], "api_key": "bad\r\nkey"},
])
def test_a_refused_edit_changes_nothing(setup, body):
    cast, fake = setup
    path = groups_path(cast) + "/mine"
    before = cast.call("GET", groups_path(cast), cast.server).json()["data"]
    refused = cast.call("PUT", path, cast.server, json=body)
    assert refused.status_code == 400 and refused.json()["code"] == "INVALID_PARAM", refused.text
    assert cast.call("GET", groups_path(cast), cast.server).json()["data"] == before
    cast.gw.wait_for_snapshot()
    fake.server.requests.clear()
    answer = cast.gw.chat({"model": "a", "messages": [{"role": "user", "content": "hi"}]}, group="mine")
    assert answer.status_code == 200, answer.text  # the group still answers with its old key and URL
    assert fake.chat_requests[-1].headers["authorization"] == f"Bearer {SECRET}"
