"""The web console end to end in headless Chromium: every click is an admin API call the gateway serves."""
import math
import re

import pytest
import requests
from playwright.sync_api import expect

from tests.support.admin_plane import make_cast
from tests.support.wait import wait_until

HELLO = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def cast(gateway):
    return make_cast(gateway)


def sign_in(page, gw, token: str, where: str = "envs") -> None:
    """Sign in and work on the gateway's own env (an operator picks it; there may be many)."""
    page.goto(f"{gw.url}/console/#/{where}")
    page.fill("[data-test=token]", token)
    page.click("[data-test=sign-in]")
    page.wait_for_selector(f"main[data-page={where}]")
    if page.input_value("#env-select") != gw.env_id:
        page.select_option("#env-select", gw.env_id)
    expect(page.locator("main h1, main h2").filter(has_text=gw.env_id).first).to_be_visible()


def test_operator_signs_in_and_sees_every_environment(page, cast, shots):
    sign_in(page, cast.gw, cast.operator)
    rows = page.locator("[data-test=env-table] tbody tr").all_inner_texts()
    assert {cast.gw.env_id, cast.other_env} <= {r.split("\t")[0] for r in rows}
    page.fill("[data-test=origins]", "https://shop.example.com")
    page.click("[data-test=save-origins]")
    page.wait_for_selector("[data-test=notice-ok]")
    assert cast.gw.admin.env_origins(cast.gw.env_id) == ["https://shop.example.com"]
    shots(page, "environments")


def test_create_a_key_and_see_it_only_once(page, cast, shots):
    sign_in(page, cast.gw, cast.operator, "keys")
    page.fill("[data-test=key-name]", "from-console")
    page.click("[data-test=create-key]")
    key = page.inner_text("[data-test=new-key]").strip()
    assert re.fullmatch(r"cbsk_[A-Za-z0-9_-]{43}", key)
    assert "from-console" in page.inner_text("[data-test=key-table]")
    shots(page, "keys-created")
    assert cast.gw.chat(HELLO, key=key).status_code == 200  # made through this gateway: known at once
    page.reload()
    page.wait_for_selector("main[data-page=keys]")
    assert key not in page.content() and key[:12] in page.inner_text("[data-test=key-table]")
    shots(page, "keys")


def test_switching_a_model_off_makes_the_chat_api_refuse_it(page, cast, shots):
    sign_in(page, cast.gw, cast.operator, "models")
    switch = page.locator("input[data-model='gemma-3-270m']")
    assert switch.is_checked()
    switch.uncheck()
    expect(page.locator("label.switch:has(input[data-model='gemma-3-270m']) span")).to_have_text("off")
    refused = cast.gw.chat(HELLO)
    assert refused.status_code == 403 and refused.json()["code"] == "AI_MODEL_DISABLED"
    shots(page, "model-groups")
    page.reload()
    page.wait_for_selector("main[data-page=models]")
    assert not page.locator("input[data-model='gemma-3-270m']").is_checked()
    page.locator("input[data-model='gemma-3-270m']").check()
    expect(page.locator("label.switch:has(input[data-model='gemma-3-270m']) span")).to_have_text("on")
    assert cast.gw.chat(HELLO).status_code == 200


def test_operator_changes_limits(page, cast, shots):
    sign_in(page, cast.gw, cast.operator, "limits")
    page.fill("input[data-limit=rpm]", "42")
    page.fill("input[data-limit=token_quota]", "")
    page.click("[data-test=save-limits]")
    page.wait_for_selector("[data-test=notice-ok]")
    limits = cast.gw.admin.env_limits(cast.gw.env_id)
    assert limits["rpm"] == 42 and limits["token_quota"] is None
    shots(page, "limits")


def test_server_key_sees_its_own_env_and_the_usage_chart_after_traffic(page, cast, shots):
    cast.gw.admin.prices.set_price(cast.gw.env_id, "cloudbase", "gemma-3-270m", "0.1", "0.25")
    cast.gw.wait_for_snapshot()
    for text in ("one", "two", "three"):
        assert cast.gw.chat({**HELLO, "messages": [{"role": "user", "content": text}]}).status_code == 200
    assert cast.gw.chat({**HELLO, "model": "no-such-model"}).status_code == 400
    wait_until(lambda: cast.gw.admin.usage_summary(cast.gw.env_id)["requests"] >= 4, "the ledger to record 4 requests")
    sign_in(page, cast.gw, cast.server, "usage")
    assert page.locator("#env-select option").all_inner_texts() == [cast.gw.env_id]
    bars = page.locator("[data-test=chart-tokens] rect[data-model='gemma-3-270m']")
    assert bars.count() == 1
    assert page.locator("[data-test=chart-requests] polyline").count() == 2
    assert page.inner_text("[data-test=total-0]") == "4" and page.inner_text("[data-test=total-1]") == "1"
    spent = cast.gw.admin.usage_summary(cast.gw.env_id)["cost_micros"]["CNY"]
    assert spent > 0 and page.inner_text("[data-test=total-5]") == f"CNY {spent // 10**6}.{spent % 10**6:06d}"
    assert f"CNY {spent // 10**6}.{spent % 10**6:06d}" in page.inner_text("[data-test=by-model]")
    recent = page.inner_text("[data-test=recent]")
    assert "AI_MODEL_NOT_SUPPORTED" in recent and "three" not in recent  # no message contents
    ticks = [float(v) for v in page.locator("[data-test=chart-tokens] text[data-tick]").evaluate_all(
        "els => els.map(e => e.dataset.tick)")]
    assert_round_ticks(ticks, largest=max(bar_heights(page)))
    shots(page, "usage")
    page.click("[data-test=lang]")
    page.wait_for_selector("text=每日 Token（按模型）")
    assert page.locator("nav a[data-page=usage]").inner_text() == "用量"
    assert page.locator("[data-test=usage-days] option:checked").inner_text() == "最近 30 天"
    assert page.locator("[data-test=by-key] th").first.inner_text() == "Key"
    shots(page, "usage-zh")
    page.click("nav a[data-page=limits]")
    page.wait_for_selector("main[data-page=limits]")
    assert page.locator("input[data-limit=rpm]").is_disabled()  # a server key reads its limits only
    assert page.locator("[data-test=save-limits]").count() == 0
    shots(page, "limits-zh")


def bar_heights(page) -> list[int]:
    """Tokens per day as the chart's bar titles say ("<day> <model>: <n>")."""
    titles = page.locator("[data-test=chart-tokens] rect title").evaluate_all("els => els.map(e => e.textContent)")
    return [int(t.rsplit(": ", 1)[1].replace(",", "")) for t in titles]


def assert_round_ticks(ticks: list[float], largest: int) -> None:
    """Evenly spaced from 0 by 1, 2, 2.5 or 5 times a power of ten, the top at or above the largest value."""
    step = ticks[1] - ticks[0]
    assert ticks[0] == 0 and all(b - a == step for a, b in zip(ticks, ticks[1:])), ticks
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert mantissa in (1, 2, 2.5, 5) and step == int(step), ticks
    assert ticks[-1] >= largest > ticks[-2], (ticks, largest)


def test_y_axis_ticks_are_round_numbers(page, cast):
    page.goto(f"{cast.gw.url}/console/")
    cases = page.evaluate("""async () => {
        const { niceTicks } = await import("/console/charts.js");
        return [1, 3, 7, 10, 97, 498, 664, 1234, 99999].map((n) => [n, niceTicks(n)]);
    }""")
    assert dict((n, ticks) for n, ticks in cases)[664] == [0, 200, 400, 600, 800]
    for largest, ticks in cases:
        assert_round_ticks(ticks, largest)


def test_chinese_locale_has_every_string(page, cast):
    page.goto(f"{cast.gw.url}/console/")
    en, zh = page.evaluate("""async () => {
        const { STRINGS } = await import("/console/i18n.js");
        return [STRINGS.en, STRINGS.zh];
    }""")
    assert set(en) == set(zh)
    untranslated = {k for k in en if zh[k] == en[k] and re.search(r"[a-z]{3}", en[k])}
    assert untranslated <= {"group_base_url"}, untranslated  # "Base URL" is what Chinese consoles say too


@pytest.mark.parametrize("who,code", [("publishable", "PERMISSION_DENIED"), ("bad", "INVALID_ACCESS_TOKEN")])
def test_sign_in_is_refused_for_keys_that_may_not_administer(page, cast, shots, who, code):
    token = cast.publishable if who == "publishable" else "cbsk_" + "x" * 43
    page.goto(f"{cast.gw.url}/console/")
    page.fill("[data-test=token]", token)
    page.click("[data-test=sign-in]")
    assert code in page.inner_text("[data-test=notice-error]")
    if who == "publishable":
        shots(page, "sign-in-refused")


def test_console_is_served_from_the_package_with_no_outside_resources(cast):
    index = requests.get(f"{cast.gw.url}/console/", timeout=5)
    assert index.status_code == 200 and "default-src 'self'" in index.headers["content-security-policy"]
    assert not re.search(r"(src|href)=\"(https?:)?//", index.text)
    for name in ("app.js", "api.js", "pages.js", "keys.js", "usage.js", "prices.js", "budgets.js", "groups.js",
                 "playground.js", "agents.js", "mcp.js", "snippets.js", "charts.js", "i18n.js", "style.css", "favicon.svg"):
        resp = requests.get(f"{cast.gw.url}/console/{name}", timeout=5)
        assert resp.status_code == 200 and "http://" not in resp.text.replace("http://www.w3.org", "")
    assert requests.get(f"{cast.gw.url}/console/nope.js", timeout=5).json()["code"] == "INVALID_PATH"
    icon = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)"', index.text)
    assert icon and requests.get(cast.gw.url + icon[1], timeout=5).headers["content-type"] == "image/svg+xml"


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


def test_operator_adds_a_custom_group_and_switches_it_off(page, groups_cast, shots):
    cast, fake, secret = groups_cast
    sign_in(page, cast.gw, cast.operator, "models")
    page.fill("[data-test=new-group-name]", "team-llm")
    page.fill("[data-test=new-group-base_url]", fake.url)
    page.fill("[data-test=new-group-models]", "m-one, m-two")
    page.fill("[data-test=new-group-api_key]", secret)
    page.click("[data-test=create-group]")
    page.wait_for_selector("[data-group='team-llm']")
    assert secret not in page.content()
    hello = {"model": "m-two", "messages": [{"role": "user", "content": "hi"}]}
    assert cast.gw.chat(hello, group="team-llm").status_code == 200
    page.locator("input[data-group-switch='team-llm']").uncheck()
    expect(page.locator("label.switch:has(input[data-group-switch='team-llm']) span")).to_have_text("off")
    refused = cast.gw.chat(hello, group="team-llm")
    assert refused.status_code == 403 and refused.json()["code"] == "AI_MODEL_DISABLED"
    shots(page, "model-groups-custom")
