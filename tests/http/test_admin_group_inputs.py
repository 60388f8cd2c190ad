"""A custom group declares through the admin API what its upstream reads besides text: declared text-only, a
request with an image is refused before it reaches the upstream, saying which group and how to declare it;
declared with vision, the image reaches the upstream; declared neither, parts go up as sent."""
import pytest
from sqlalchemy import text

from tests.http.test_admin_groups import ENV, SECRET, groups_path
from tests.http.test_deployment_inputs import IMAGE_PART, PICTURE, chat_with, sent_image_urls
from tests.support.admin_plane import make_cast
from tests.support.fake_upstream import start_fake_upstream
from tests.store.test_migrations import make_before_deployment_caps
from tests.support.gateway import start_in_thread


@pytest.fixture
def setup(tmp_path):
    fake = start_fake_upstream(require_key=SECRET)
    gw = start_in_thread(tmp_path / "data", env=ENV)
    yield make_cast(gw), fake
    gw.stop()
    fake.stop()


def group(cast, name: str) -> dict:
    return next(g for g in cast.call("GET", groups_path(cast), cast.server).json()["data"] if g["name"] == name)


def test_a_group_declared_text_only_refuses_images_until_declared_with_vision(setup):
    cast, fake = setup
    made = cast.call("POST", groups_path(cast), cast.server, json={
        "name": "mine", "base_url": fake.url, "models": ["m"], "api_key": SECRET, "vision": False})
    assert made.status_code == 201, made.text
    assert made.json()["vision"] is False and made.json()["audio_input"] is None
    cast.gw.wait_for_snapshot()
    checks = len(fake.requests)  # the creation check's

    refused = cast.gw.chat(chat_with("m", IMAGE_PART), group="mine")
    assert refused.status_code == 400 and refused.json()["code"] == "AI_MODEL_PARAM_INVALID", refused.text
    message = refused.json()["message"]
    assert "model 'm' in group 'mine' does not read images (image_url parts)" in message
    assert "deployment mine" in message and '{"vision": true}' in message and "/groups/mine" in message
    assert len(fake.requests) == checks  # nothing reached the upstream
    assert cast.gw.chat(chat_with("m"), group="mine").status_code == 200  # text is served as ever

    changed = cast.call("PUT", groups_path(cast) + "/mine", cast.server, json={"vision": True})
    assert changed.status_code == 200 and changed.json()["vision"] is True, changed.text
    cast.gw.wait_for_snapshot()
    served = cast.gw.chat(chat_with("m", IMAGE_PART), group="mine")
    assert served.status_code == 200, served.text
    assert sent_image_urls(fake) == [PICTURE]

    forgotten = cast.call("PUT", groups_path(cast) + "/mine", cast.server, json={"vision": None})
    assert forgotten.status_code == 200 and forgotten.json()["vision"] is None
    assert group(cast, "mine")["vision"] is None and group(cast, "mine")["timeouts"] is None


def test_a_group_created_without_declarations_sends_parts_as_before(setup):
    cast, fake = setup
    made = cast.call("POST", groups_path(cast), cast.server, json={
        "name": "plain", "base_url": fake.url, "models": ["m"], "api_key": SECRET})
    assert made.status_code == 201 and made.json()["vision"] is None and made.json()["audio_input"] is None
    cast.gw.wait_for_snapshot()
    assert cast.gw.chat(chat_with("m", IMAGE_PART), group="plain").status_code == 200
    assert sent_image_urls(fake) == [PICTURE]


@pytest.mark.parametrize("body", [{"vision": "yes"}, {"audio_input": 1}])
def test_a_declaration_is_true_false_or_null(setup, body):
    cast, fake = setup
    made = cast.call("POST", groups_path(cast), cast.server, json={
        "name": "x", "base_url": fake.url, "models": ["m"], "check": False, **body})
    assert made.status_code == 400 and made.json()["code"] == "INVALID_PARAM", made.text
    cast.call("POST", groups_path(cast), cast.server, json={"name": "x", "base_url": fake.url, "models": ["m"],
                                                            "check": False}).raise_for_status()
    edit = cast.call("PUT", groups_path(cast) + "/x", cast.server, json=body)
    assert edit.status_code == 400 and edit.json()["code"] == "INVALID_PARAM"
    assert "true, false or null" in edit.json()["message"] and "--" not in edit.json()["message"]


def test_only_a_custom_group_declares_what_its_upstream_reads(setup):
    cast, _ = setup
    vendor = cast.call("PUT", groups_path(cast) + "/deepseek", cast.server, json={"vision": True})
    assert vendor.status_code == 400 and vendor.json()["code"] == "INVALID_PARAM"
    assert "built-in group" in vendor.json()["message"]
    catalog = cast.call("PUT", groups_path(cast) + "/cloudbase", cast.operator, json={"vision": True})
    assert catalog.status_code == 400


def test_a_group_made_before_declarations_is_sent_images_after_the_upgrade(tmp_path, monkeypatch):
    fake = start_fake_upstream()
    old = make_before_deployment_caps(tmp_path / "old.db", monkeypatch)
    with old.engine.begin() as conn:
        conn.execute(text("INSERT INTO envs (id, created_at) VALUES ('team-old', 0)"))
        conn.execute(text("INSERT INTO model_groups (env_id, name, kind, base_url, protocol, enabled, created_at, "
                          "updated_at) VALUES ('team-old', 'vllm', 'custom', :url, 'openai', 1, 0, 0)"),
                     {"url": fake.url})
        conn.execute(text("INSERT INTO model_switches VALUES ('team-old', 'vllm', 'qwen-vl', 1)"))
    old.close()
    gw = start_in_thread(tmp_path / "data", env={**ENV, "CBGATE_DATABASE_URL": str(tmp_path / "old.db")})
    try:
        _, key = gw.admin.create_key("team-old")
        gw.wait_for_snapshot()
        r = gw.chat(chat_with("qwen-vl", IMAGE_PART), key=key, group="vllm")
        assert r.status_code == 200, r.text
        assert sent_image_urls(fake) == [PICTURE]
    finally:
        gw.stop()
        fake.stop()
