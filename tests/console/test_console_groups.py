"""The console's first minutes and its model-group editor, in headless Chromium against a real gateway and a
fake OpenAI-compatible upstream."""
import os
import time

import pytest
from playwright.sync_api import expect

from tests.console.test_console import sign_in
from tests.support.admin_plane import make_cast
from tests.support.wait import wait_until

HELLO = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}


def test_sign_in_says_where_a_token_comes_from_and_opens_the_env_with_traffic(page, gateway, shots):
    cast = make_cast(gateway)
    quiet = gateway.admin.create_env("aaa-quiet")  # first by name, and without traffic
    assert gateway.chat(HELLO).status_code == 200
    wait_until(lambda: gateway.admin.usage_summary(gateway.env_id)["requests"] >= 1, "the ledger to record it")
    page.goto(f"{gateway.url}/console/")
    expect(page.locator("[data-test=token-where] code")).to_have_text("cbgate admin token create")
    shots(page, "sign-in")
    page.fill("[data-test=token]", cast.operator)
    page.click("[data-test=sign-in]")
    page.wait_for_selector("main[data-page=envs]")
    options = page.locator("#env-select option").all_inner_texts()
    assert options.index(quiet) < options.index(gateway.env_id)
    # The busiest env: this gateway's own unless the suite shares one PostgreSQL database with busier ones.
    busiest = gateway.admin.busiest_env(options, time.time() - 30 * 86400)
    assert busiest != quiet and page.input_value("#env-select") == busiest
    if os.environ.get("CBGATE_TEST_STORE") != "postgresql":
        assert busiest == gateway.env_id


@pytest.fixture
def groups_cast(tmp_path):
    from tests.http.test_admin_groups import ENV, SECRET
    from tests.support.fake_upstream import start_fake_upstream
    from tests.support.gateway import start_in_thread
    fake = start_fake_upstream(require_key=SECRET)
    gw = start_in_thread(tmp_path / "data", env=ENV)
    yield make_cast(gw), fake, SECRET
    gw.stop()
    fake.stop()


def test_add_group_errors_show_beside_the_form_in_console_words(page, groups_cast, shots):
    cast, fake, _ = groups_cast
    sign_in(page, cast.gw, cast.operator, "models")
    form = page.locator("[data-test=new-group-form]")
    form.get_by_label("Group name").fill("team-llm")
    form.get_by_label("Base URL").fill(fake.url)
    form.get_by_label("Models").fill("m-one, m-two")
    form.get_by_label("Upstream key").fill("sk-wrong")
    page.click("[data-test=create-group]")
    error = page.locator("[data-test=new-group-form] + [data-test=new-group-status] [data-test=notice-error]")
    expect(error).to_contain_text("AI_MODEL_REQUEST_FAILED")
    expect(error).to_be_in_viewport()
    hint = page.locator("[data-test=new-group-status] [data-test=error-hint]")
    expect(hint).to_contain_text("Untick “Check it answers before adding”")
    assert "--" not in error.inner_text() + hint.inner_text()  # no CLI flags in the console
    shots(page, "model-groups-error")
    form.get_by_label("Check it answers before adding").uncheck()
    page.click("[data-test=create-group]")
    page.wait_for_selector("[data-group='team-llm']")  # added anyway, with the wrong key


def test_edit_a_custom_group_and_test_it(page, groups_cast, shots):
    cast, fake, secret = groups_cast
    gw = cast.gw
    gw.admin.groups.create_group(gw.env_id, "team-llm", fake.url + "/old", ["m-one", "m-two"], api_key="sk-wrong",
                          check=False)
    gw.admin.set_model(gw.env_id, "team-llm", "m-one", False)
    sign_in(page, gw, cast.operator, "models")
    settings = page.locator("[data-test=settings-team-llm]")
    page.click("[data-test=test-team-llm]")
    result = page.locator("[data-test=test-result-team-llm]")
    expect(result).to_have_attribute("data-ok", "false")
    expect(result).to_contain_text("did not answer")

    settings.get_by_label("Base URL").fill(fake.url)
    settings.get_by_label("Models").fill("m-one, m-three")
    settings.get_by_label("Upstream key").fill(secret)
    settings.get_by_label("Total").fill("30")
    page.click("[data-test=save-team-llm]")
    expect(page.locator("[data-test=models-team-llm]")).to_contain_text("m-three")
    assert secret not in page.content()
    page.click("[data-test=test-team-llm]")
    expect(page.locator("[data-test=test-result-team-llm]")).to_have_attribute("data-ok", "true")
    shots(page, "model-groups-edit")

    group = next(g for g in gw.admin.groups.list_groups(gw.env_id) if g.name == "team-llm")
    assert group.base_url == fake.url and group.models == ("m-one", "m-three") and group.timeouts == {"total": 30}
    assert not page.locator("input[data-model='m-one'][data-in-group='team-llm']").is_checked()  # kept its switch
    ask = {"model": "m-three", "messages": [{"role": "user", "content": "hi"}]}
    assert gw.chat(ask, group="team-llm").status_code == 200
    gone = gw.chat({**ask, "model": "m-two"}, group="team-llm")
    assert gone.status_code == 400 and gone.json()["code"] == "AI_MODEL_NOT_SUPPORTED"
