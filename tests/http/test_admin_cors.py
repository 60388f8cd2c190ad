"""Publishable keys from a browser: CORS for the origins an environment allows, chat only."""
import time

import pytest
import requests

from tests.support.admin_plane import make_cast

HELLO = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}
SHOP = "https://shop.example.com"


@pytest.fixture
def cast(gateway):
    cast = make_cast(gateway)
    resp = cast.call("PUT", f"/admin/v1/envs/{gateway.env_id}/origins", cast.server,
                     json={"origins": [SHOP + "/", "HTTP://LOCALHOST:3000"]})
    assert resp.json()["origins"] == ["http://localhost:3000", SHOP]
    return cast


def preflight(gw, origin: str, host: str | None = None) -> requests.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization, content-type"}
    if host:
        headers["Host"] = host
    return requests.options(gw.chat_url(), headers=headers, timeout=10)


def test_preflight_is_answered_for_allowed_origins_only(cast):
    ok = preflight(cast.gw, SHOP)
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == SHOP
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    refused = preflight(cast.gw, "https://evil.example")
    assert refused.status_code == 403 and refused.json()["code"] == "PERMISSION_DENIED"
    assert "access-control-allow-origin" not in refused.headers
    # A Host naming another environment answers for that environment's origins only.
    other = preflight(cast.gw, SHOP, host=f"{cast.other_env}.api.example.com")
    assert other.status_code == 403


def test_publishable_key_chats_from_an_allowed_origin(cast):
    headers = {**cast.gw.headers(cast.publishable), "Origin": SHOP}
    resp = requests.post(cast.gw.chat_url(), json=HELLO, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["access-control-allow-origin"] == SHOP
    assert "x-request-id" in resp.headers["access-control-expose-headers"]


def test_publishable_key_is_refused_from_other_origins(cast):
    headers = {**cast.gw.headers(cast.publishable), "Origin": "https://evil.example"}
    resp = requests.post(cast.gw.chat_url(), json=HELLO, headers=headers, timeout=10)
    assert resp.status_code == 403 and resp.json()["code"] == "PERMISSION_DENIED"
    assert "access-control-allow-origin" not in resp.headers


def test_publishable_key_gets_enabled_models_only_and_no_admin_api(cast):
    cast.gw.admin.set_model(cast.gw.env_id, "cloudbase", "gemma-3-270m", False)
    headers = {**cast.gw.headers(cast.publishable), "Origin": SHOP}
    cast.gw.wait_for_snapshot()
    resp = requests.post(cast.gw.chat_url(), json=HELLO, headers=headers, timeout=10)
    assert resp.status_code == 403 and resp.json()["code"] == "AI_MODEL_DISABLED"
    assert resp.headers["access-control-allow-origin"] == SHOP  # the page can read why
    listing = requests.get(f"{cast.gw.url}/v1/ai/cloudbase/models", headers=headers, timeout=10).json()
    assert listing["data"] == []
    admin = cast.call("GET", "/admin/v1/envs", cast.publishable)
    assert admin.status_code == 403 and admin.json()["code"] == "PERMISSION_DENIED"


def test_server_keys_and_same_origin_calls_need_no_allow_list(cast):
    same = requests.post(cast.gw.chat_url(), json=HELLO, timeout=10,
                         headers={**cast.gw.headers(), "Origin": cast.gw.url})
    assert same.status_code == 200 and "access-control-allow-origin" not in same.headers
    server = requests.post(cast.gw.chat_url(), json=HELLO, timeout=10,
                           headers={**cast.gw.headers(), "Origin": "https://tool.example"})
    assert server.status_code == 200 and "access-control-allow-origin" not in server.headers


@pytest.mark.parametrize("origins", [["shop.example.com"], ["https://shop.example.com/app"], ["ftp://x.example"], "x"])
def test_bad_origins_are_refused(cast, origins):
    resp = cast.call("PUT", f"/admin/v1/envs/{cast.gw.env_id}/origins", cast.operator, json={"origins": origins})
    assert resp.status_code == 400 and resp.json()["code"] == "INVALID_PARAM"


def test_publishable_key_as_x_api_key_is_held_to_its_own_environments_origins(cast):
    """The Messages surface takes a key as `x-api-key` too: CORS must judge that key by its own environment,
    not let it through because another environment allows the page's origin."""
    theirs = "https://their-shop.example"
    assert cast.call("PUT", f"/admin/v1/envs/{cast.other_env}/origins", cast.other_server,
                     json={"origins": [theirs]}).status_code == 200
    cast.gw.wait_for_snapshot()
    url = cast.gw.url + "/v1/ai/cloudbase/v1/messages"
    ask = {"model": "gemma-3-270m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    key_host = f"{cast.gw.env_id}.api.example.com"
    for origin, allowed in ((theirs, False), (SHOP, True)):
        pre = requests.options(url, timeout=10, headers={
            "Origin": origin, "Host": key_host, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type"})
        assert (pre.status_code == 204) is allowed, pre.text
        assert ("access-control-allow-origin" in pre.headers) is allowed
        # The Host names no environment here, as when the gateway is reached by its own address.
        resp = requests.post(url, json=ask, timeout=30, headers={"x-api-key": cast.publishable, "Origin": origin})
        if allowed:
            assert resp.status_code == 200, resp.text
            assert resp.headers["access-control-allow-origin"] == SHOP and resp.json()["content"][0]["text"]
        else:
            assert resp.status_code == 403 and resp.json()["code"] == "PERMISSION_DENIED", resp.text
            assert "access-control-allow-origin" not in resp.headers


def test_a_404_under_the_model_api_is_readable_by_an_allowed_page(cast):
    """A page pointed at a wrong path gets the CloudBase 404 body, not an opaque CORS failure: the table
    that decides the 404 answers the preflight and puts the origin headers on the reply."""
    url = f"{cast.gw.url}/v1/ai/cloudbase/chat/completion"
    ask = requests.options(url, timeout=10, headers={"Origin": SHOP, "Access-Control-Request-Method": "POST",
                                                     "Access-Control-Request-Headers": "authorization, content-type"})
    assert ask.status_code == 204 and ask.headers["access-control-allow-origin"] == SHOP
    resp = requests.post(url, json=HELLO, headers={**cast.gw.headers(cast.publishable), "Origin": SHOP}, timeout=10)
    assert resp.status_code == 404 and resp.json()["code"] == "INVALID_PATH"
    assert "chat/completions" in resp.json()["message"]
    assert resp.headers["access-control-allow-origin"] == SHOP
    refused = requests.post(url, json=HELLO, timeout=10,
                            headers={**cast.gw.headers(cast.publishable), "Origin": "https://evil.example"})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    elsewhere = requests.post(f"{cast.gw.url}/nowhere", json=HELLO, headers={"Origin": SHOP}, timeout=10)
    assert elsewhere.status_code == 404 and "access-control-allow-origin" not in elsewhere.headers
