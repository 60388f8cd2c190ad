"""A key's permissions on the console's API keys page, in headless Chromium: its model allow-list, its own
limits and its MCP grants, saved through the admin API and held by the gateway; what the API refuses is shown
beside the editor, word for word."""
import pytest
from playwright.sync_api import expect

from tests.console.test_console import sign_in
from tests.support.admin_plane import make_cast

HELLO = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def cast(gateway):
    return make_cast(gateway)


def server_key(cast):
    return next(k for k in cast.gw.admin.list_keys(cast.gw.env_id) if k.kind == "server" and k.revoked_at is None)


def api_permissions(cast, key_id: str) -> dict:
    resp = cast.call("GET", f"/admin/v1/envs/{cast.gw.env_id}/keys/{key_id}/permissions", cast.operator)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_allow_list_edited_in_the_console_refuses_other_models_at_the_gateway(page, cast, shots):
    gw, key = cast.gw, server_key(cast)
    assert gw.chat(HELLO).status_code == 200
    sign_in(page, gw, cast.operator, "keys")
    page.click(f"[data-test='permissions-{key.prefix}']")
    form = page.locator("[data-test=permissions-form]")
    expect(form).to_contain_text(f"Permissions of key {key.prefix}")
    page.select_option("[data-test=perm-models-mode]", "only")
    page.fill("[data-test=perm-models]", "cloudbase/some-other-model, team/m-one")
    page.fill("input[data-perm=rpm]", "30")
    page.fill("input[data-perm=token_quota]", "100000")
    page.select_option("[data-test=perm-mcp-mode]", "only")
    page.fill("[data-test=perm-mcp]", "search: web_search, fetch\nfiles: *")
    page.click("[data-test=save-permissions]")
    expect(page.locator("[data-test=key-list-status]")).to_contain_text(f"Permissions of key {key.prefix}… saved.")
    summary = page.locator(f"[data-summary='{key.prefix}']")
    expect(summary).to_have_text("2 models · rpm 30 · quota 100,000 · MCP: 2 services")
    shots(page, "key-permissions")

    saved = api_permissions(cast, key.id)
    assert saved["models"] == ["cloudbase/some-other-model", "team/m-one"]
    assert (saved["rpm"], saved["concurrency"], saved["token_quota"]) == (30, None, 100000)
    assert saved["mcp"] == {"files": "*", "search": ["fetch", "web_search"]}
    refused = gw.chat(HELLO)
    assert refused.status_code == 403 and refused.json()["code"] == "PERMISSION_DENIED"
    assert "gemma-3-270m" in refused.json()["message"]

    # Reopened, the editor shows what is saved; back to every model, the gateway answers again.
    page.click(f"[data-test='permissions-{key.prefix}']")
    assert page.input_value("[data-test=perm-models]") == "cloudbase/some-other-model, team/m-one"
    assert page.input_value("[data-test=perm-mcp]") == "files: *\nsearch: fetch, web_search"
    page.select_option("[data-test=perm-models-mode]", "all")
    page.fill("input[data-perm=rpm]", "")
    page.click("[data-test=save-permissions]")
    expect(summary).to_have_text("quota 100,000 · MCP: 2 services")
    assert api_permissions(cast, key.id)["models"] is None and api_permissions(cast, key.id)["rpm"] is None
    assert gw.chat(HELLO).status_code == 200


def test_a_refused_permission_shows_the_apis_error_and_changes_nothing(page, cast, shots):
    gw, key = cast.gw, server_key(cast)
    sign_in(page, gw, cast.operator, "keys")
    page.click(f"[data-test='permissions-{key.prefix}']")
    page.select_option("[data-test=perm-models-mode]", "only")
    page.fill("[data-test=perm-models]", "gemma-3-270m")  # no group
    page.click("[data-test=save-permissions]")
    error = page.locator("[data-test=permissions-form] + [data-test=permissions-status] [data-test=notice-error]")
    expect(error).to_contain_text("INVALID_PARAM")
    expect(error).to_contain_text("must be group/model, e.g. cloudbase/hunyuan-turbos")
    page.fill("[data-test=perm-models]", "cloudbase/gemma-3-270m")
    page.select_option("[data-test=perm-mcp-mode]", "only")
    page.fill("[data-test=perm-mcp]", "Bad Service: x")
    page.click("[data-test=save-permissions]")
    expect(error).to_contain_text("mcp service name 'Bad Service' is not valid")
    expect(error).to_be_in_viewport()
    shots(page, "key-permissions-error")
    assert api_permissions(cast, key.id)["models"] is None  # nothing saved
    assert gw.chat(HELLO).status_code == 200


def test_a_key_held_by_permissions_may_not_lift_them(page, cast):
    gw, key = cast.gw, server_key(cast)
    gw.admin.change_key_permissions(key.id, {"rpm": 100}, gw.env_id)
    gw.wait_for_snapshot()
    sign_in(page, gw, cast.server, "keys")
    page.click(f"[data-test='permissions-{key.prefix}']")
    page.fill("input[data-perm=rpm]", "")
    page.click("[data-test=save-permissions]")
    expect(page.locator("[data-test=permissions-status] [data-test=notice-error]")).to_contain_text("PERMISSION_DENIED")
    assert api_permissions(cast, key.id)["rpm"] == 100


def test_a_key_name_with_markup_is_shown_as_text_on_every_page_that_names_keys(page, cast):
    gw = cast.gw
    name = '<img src=x onerror="document.title=1">bold</b>'
    row, _ = gw.admin.create_key(gw.env_id, name=name)
    gw.admin.budgets.set_budget(gw.env_id, row.id, "day", tokens=1000)
    gw.wait_for_snapshot()
    sign_in(page, gw, cast.operator, "keys")
    page.click(f"[data-test='permissions-{row.prefix}']")
    expect(page.locator("[data-test=permissions-form] h2")).to_have_text(f"Permissions of key {row.prefix}… {name}")
    for where, shown in (("keys", "[data-test=key-table]"), ("usage", "[data-test=usage-key]"),
                         ("budgets", "[data-test=budgets]")):
        page.click(f"nav a[data-page={where}]")
        page.wait_for_selector(f"main[data-page={where}]")
        expect(page.locator(shown)).to_contain_text(name)
        assert page.locator("main img").count() == 0 and page.title() != "1"
