"""A key's own policy, as its holder and its administrator see it: the model allow-list refuses every
other model on every surface (chat, Messages, Responses, images, the model list), and a key that has a
policy cannot give itself a new one or a new key without one. The allow-list is a part of the key's one
permissions value, beside its MCP list and its own limits; changing one part leaves the others."""
from __future__ import annotations

import pytest
import requests

from cbgate.core.permissions import from_json

ALLOWED = "up-openai"


@pytest.fixture(scope="module")
def restricted(surfaces):
    gw = surfaces.gw
    row, key = gw.admin.create_key(gw.env_id, name="restricted")
    gw.admin.change_key_permissions(row.id, {"models": [f"cloudbase/{ALLOWED}"]}, gw.env_id)
    gw.wait_for_snapshot()
    return row, key


def call(surfaces, key: str, surface: str, model: str) -> requests.Response:
    base, headers = surfaces.base(), {"Authorization": f"Bearer {key}"}
    if surface == "chat":
        return requests.post(base + "/chat/completions", headers=headers, timeout=30,
                             json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    if surface == "messages":
        return requests.post(base + "/v1/messages", headers=headers, timeout=30, json={
            "model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
    if surface == "responses":
        return requests.post(base + "/responses", headers=headers, timeout=30, json={"model": model, "input": "hi"})
    return requests.post(base + "/images/generations", headers=headers, timeout=30,
                         json={"model": model, "prompt": "a cat"})


@pytest.mark.parametrize("surface,refused", [("chat", "up-anthropic"), ("messages", "up-anthropic"),
                                             ("responses", "up-small"), ("images", "up-image")])
def test_the_allow_list_refuses_other_models_on_every_surface(surfaces, fake, restricted, surface, refused):
    _, key = restricted
    r = call(surfaces, key, surface, refused)
    assert r.status_code == 403, r.text
    body = r.json()
    assert body.get("code", (body.get("error") or {}).get("type")) in ("PERMISSION_DENIED", "permission_error")
    assert refused in r.text
    if surface != "images":  # the allowed model still answers (it does not generate images)
        assert call(surfaces, key, surface, ALLOWED).status_code == 200
    assert call(surfaces, surfaces.gw.key, surface, refused).status_code != 403  # the env's other key may


def test_the_model_list_shows_only_the_allowed_models(surfaces, restricted):
    _, key = restricted
    listed = requests.get(surfaces.base() + "/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert [m["id"] for m in listed.json()["data"]] == [ALLOWED]
    everything = requests.get(surfaces.base() + "/models", headers=surfaces.gw.headers(), timeout=30)
    assert len(everything.json()["data"]) > 1


def test_a_key_with_a_policy_cannot_lift_it_nor_mint_a_key_without_one(surfaces, restricted):
    row, key = restricted
    gw = surfaces.gw
    headers = {"Authorization": f"Bearer {key}"}
    lift = requests.put(f"{gw.url}/admin/v1/envs/{gw.env_id}/keys/{row.id}/permissions", json={"models": None},
                        headers=headers, timeout=30)
    assert lift.status_code == 403 and lift.json()["code"] == "PERMISSION_DENIED"
    mint = requests.post(f"{gw.url}/admin/v1/envs/{gw.env_id}/keys", json={}, headers=headers, timeout=30)
    assert mint.status_code == 403
    stored = next(k for k in gw.admin.list_keys(gw.env_id) if k.id == row.id)
    assert from_json(stored.permissions).models == frozenset({f"cloudbase/{ALLOWED}"})


def test_the_admin_api_sets_and_shows_a_keys_policy(surfaces):
    gw = surfaces.gw
    row, key = gw.admin.create_key(gw.env_id, name="limited")
    url = f"{gw.url}/admin/v1/envs/{gw.env_id}/keys/{row.id}/permissions"
    for bad in ({}, {"rpm": 0}, {"rpm": "5"}, {"models": "cloudbase"}, {"models": ["no-slash"]}, {"colour": 1}):
        r = requests.put(url, json=bad, headers=gw.headers(), timeout=30)
        assert r.status_code == 400 and r.json()["code"] == "INVALID_PARAM", bad
    r = requests.put(url, json={"rpm": 7, "models": ["cloudbase/up-openai"]}, headers=gw.headers(), timeout=30)
    assert r.status_code == 200 and r.json()["rpm"] == 7 and r.json()["models"] == ["cloudbase/up-openai"]
    listed = requests.get(f"{gw.url}/admin/v1/envs/{gw.env_id}/keys", headers=gw.headers(), timeout=30).json()
    mine = next(k for k in listed["data"] if k["id"] == row.id)
    assert (mine["rpm"], mine["concurrency"], mine["models"]) == (7, None, ["cloudbase/up-openai"])
    other = requests.put(f"{gw.url}/admin/v1/envs/{gw.env_id}/keys/key-nosuch/permissions", json={"rpm": 1},
                         headers=gw.headers(), timeout=30)
    assert other.status_code == 400
    mcp = requests.put(url, json={"mcp": {"search": "*"}}, headers=gw.headers(), timeout=30).json()
    assert mcp["mcp"] == {"search": "*"} and mcp["rpm"] == 7 and mcp["models"] == ["cloudbase/up-openai"]  # kept
    back = requests.put(url, json={"rpm": None, "models": None, "mcp": None}, headers=gw.headers(), timeout=30)
    assert back.json()["rpm"] is None and back.json()["models"] is None
    assert next(k for k in gw.admin.list_keys(gw.env_id) if k.id == row.id).permissions is None  # nothing of its own
