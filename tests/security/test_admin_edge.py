"""The admin plane at its edges: names, origins, URLs and numbers are refused with a 400 before they reach
storage or a terminal (no NUL, no control characters, whole-string patterns), a key cannot outlive the key
that made it, and upper-case Host labels name the same environment (issue 11)."""
from __future__ import annotations

import time

import pytest
import requests

from cbgate.core.keys import new_key_id
from cbgate.store import envs as stored_envs
from cbgate.store.envs import KeyRow
from tests.cli.test_tenant_commands import cbgate
from tests.support.gateway import start_in_thread

OPERATOR_KEY = "operator-passphrase-for-security-tests"
HI = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    gw = start_in_thread(tmp_path_factory.mktemp("admin-edge") / "data", env={"CBGATE_SECRET_KEY": OPERATOR_KEY})
    yield gw
    gw.stop()


def admin(gw, method: str, path: str, key: str | None = None, **kwargs) -> requests.Response:
    return requests.request(method, f"{gw.url}/admin/v1{path}", headers=gw.headers(key), timeout=30, **kwargs)


def refused(reply: requests.Response) -> bool:
    return reply.status_code == 400 and reply.json()["code"] == "INVALID_PARAM" and "Traceback" not in reply.text


@pytest.mark.parametrize("name", ["bad\u0000name", "x\u001b]52;c;aGk=\u0007", "line\r\nforged", "tab\tname",
                                  "\u202eevil", "n" * 200])
def test_key_names_that_could_drive_a_terminal_are_refused(gw, name):
    assert refused(admin(gw, "POST", f"/envs/{gw.env_id}/keys", json={"name": name}))


@pytest.mark.parametrize("days", [9223372036854775807, 1e308, 0, -1, 36501])
def test_expiry_is_bounded(gw, days):
    assert refused(admin(gw, "POST", f"/envs/{gw.env_id}/keys", json={"expires_days": days}))


def test_keys_list_after_every_refused_expiry(gw):
    assert admin(gw, "GET", f"/envs/{gw.env_id}/keys").status_code == 200


def test_a_key_cannot_outlive_the_key_that_creates_it(gw):
    parent = admin(gw, "POST", f"/envs/{gw.env_id}/keys", json={"expires_days": 1}).json()
    gw.wait_for_snapshot()
    longer = admin(gw, "POST", f"/envs/{gw.env_id}/keys", parent["key"], json={"expires_days": 30})
    assert refused(longer) and "outlive" in longer.json()["message"]
    forever = admin(gw, "POST", f"/envs/{gw.env_id}/keys", parent["key"], json={})
    assert forever.status_code == 201 and forever.json()["expires_at"] <= parent["expires_at"]
    shorter = admin(gw, "POST", f"/envs/{gw.env_id}/keys", parent["key"], json={"expires_days": 0.5})
    assert shorter.status_code == 201 and shorter.json()["expires_at"] < parent["expires_at"]


@pytest.mark.parametrize("origin", ["http://[::1", "http://[127.0.0.1]/", "https://a.example\u0000",
                                    "https://<img src=x onerror=alert(1)>", "https://a.example\r\nX: y",
                                    "http://host:abc", "http://a b", "https://a.example/path", "javascript:alert(1)"])
def test_bad_origins_are_refused(gw, origin):
    assert refused(admin(gw, "PUT", f"/envs/{gw.env_id}/origins", json={"origins": [origin]}))


def test_origins_are_stored_as_browsers_send_them(gw):
    reply = admin(gw, "PUT", f"/envs/{gw.env_id}/origins",
                  json={"origins": ["HTTPS://App.Example.com:443/", "http://bücher.example:8080"]})
    assert reply.status_code == 200
    assert reply.json()["origins"] == ["http://xn--bcher-kva.example:8080", "https://app.example.com"]


@pytest.mark.parametrize("field, value", [
    ("base_url", "http://[::1"), ("base_url", "http://[127.0.0.1]/"), ("base_url", "http://host:abc/v1"),
    ("base_url", "http://a b/v1"), ("base_url", "http://up.example/v1\u0000"), ("base_url", "http://up.example\n/v1"),
    ("name", "mine\n"), ("name", "mine\u0000"), ("models", ["m\nx"]), ("models", ["m\u0000"]),
    ("api_key", "sk-1\r\nX-Injected: 1"), ("api_key", "sk\u0000"), ("timeouts", {"total": float("1e308")}),
    ("timeouts", {"total": "5"}),
])
def test_bad_group_fields_are_refused(gw, field, value):
    name = "g" + str(abs(hash((field, str(value)))))[:12]  # its own name: a refusal is never "already exists"
    body = {"name": name, "base_url": "http://up.example/v1", "models": ["m"], "check": False, field: value}
    reply = admin(gw, "POST", f"/envs/{gw.env_id}/groups", json=body)
    assert refused(reply) and "already exists" not in reply.text


def test_trailing_newlines_do_not_pass_name_patterns(gw):
    assert stored_envs.env_exists(gw.admin.store, gw.env_id)
    with pytest.raises(Exception, match="environment id"):
        gw.admin.create_env("team-z\n")


def test_limits_and_queries_are_bounded(gw):
    _, operator = gw.admin.create_operator_token("security-tests")
    gw.wait_for_snapshot()
    assert refused(admin(gw, "PUT", f"/envs/{gw.env_id}/limits", operator, json={"token_quota": 2 ** 64}))
    for query in ("days=1e308", "days=-5", "since=-1e300", "since=1e300"):
        assert refused(admin(gw, "GET", f"/envs/{gw.env_id}/usage?{query}"))
    assert admin(gw, "GET", f"/envs/{gw.env_id}/requests?limit=1e308").status_code == 200


def test_an_upper_case_api_label_names_the_environment(gw):
    other = gw.admin.create_env()

    def code(host: str) -> str:
        return requests.post(gw.chat_url(), json=HI, headers={**gw.headers(), "Host": host}, timeout=30).json()["code"]

    gw.wait_for_snapshot()
    for host in (f"{other}.api.example.com", f"{other.upper()}.API.example.com", f"{other}.Api.example.com"):
        reply = requests.post(gw.chat_url(), json=HI, headers={**gw.headers(), "Host": host}, timeout=30)
        assert reply.status_code == 403 and reply.json()["code"] == "PERMISSION_DENIED", host
    own = requests.post(gw.chat_url(), json=HI, headers={**gw.headers(), "Host": f"{gw.env_id.upper()}.API.x"},
                        timeout=30)
    assert own.status_code == 200


def test_the_cli_prints_stored_names_escaped(tmp_path):
    """A name stored before these checks (or written to the database directly) still cannot drive the
    operator's terminal: `cbgate key list` prints its control characters as escapes."""
    from tests.support.gateway import make_admin
    data_dir = tmp_path / "data"
    adm = make_admin(data_dir, env={})
    env_id = adm.create_env("team-a")
    hostile = "\u001b]52;c;aGFja2Vk\u0007\u001b[2K\rforged\u202e\tcol\nline"
    stored_envs.insert_key(adm.store, KeyRow(id=new_key_id(), env_id=env_id, digest="0" * 64, prefix="cbsk_xxxxxxx",
                                             kind="server", name=hostile, created_at=time.time(), expires_at=None,
                                             revoked_at=None, last_used_at=None))
    stored_envs.insert_key(adm.store, KeyRow(id=new_key_id(), env_id=env_id, digest="1" * 64, prefix="cbsk_yyyyyyy",
                                             kind="server", name="far-future", created_at=time.time(),
                                             expires_at=9.2e18, revoked_at=None, last_used_at=None))
    adm.store.close()  # the second as `expires_days: 9223372036854775807` once stored it
    out = cbgate(data_dir, "key", "list", "--env", env_id).stdout
    assert "\u001b" not in out and "\u0007" not in out and "\r" not in out and "\u202e" not in out
    assert "\\x1b]52;c;aGFja2Vk\\x07\\x1b[2K\\x0dforged\\u202e\\x09col\\x0aline" in out
    assert len(out.strip().splitlines()) == 3  # the header and two rows: no forged line
    assert "never" in out and "far-future" in out  # the listing survives an expiry past year 9999
    assert "far-future" in cbgate(data_dir, "key", "list", "--env", env_id, "--json").stdout


def test_an_expiry_stored_past_year_9999_lists_as_none(gw):
    """Such a row once made the console show "Invalid time value"; revoking did not help."""
    stored_envs.insert_key(gw.admin.store, KeyRow(id=new_key_id(), env_id=gw.env_id, digest="2" * 64,
                                                  prefix="cbsk_zzzzzzz", kind="server", name="far", created_at=0.0,
                                                  expires_at=9.2e18, revoked_at=None, last_used_at=None))
    listed = admin(gw, "GET", f"/envs/{gw.env_id}/keys").json()["data"]
    assert next(k for k in listed if k["name"] == "far")["expires_at"] is None
