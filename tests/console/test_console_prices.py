"""The console's Prices page in headless Chromium: every model's price per group, set (uniform or one tier) and
deleted by an operator through the admin API; a refused price shows the API's own words; a server key reads."""
import pytest
from playwright.sync_api import expect

from tests.console.test_console import sign_in
from tests.support.admin_plane import make_cast

MODEL = "cloudbase/gemma-3-270m"
ROW = f"[data-price='{MODEL}']"


@pytest.fixture
def cast(gateway):
    return make_cast(gateway)


def api_price(cast) -> dict:
    resp = cast.call("GET", f"/admin/v1/envs/{cast.gw.env_id}/prices", cast.operator)
    return next(p for p in resp.json()["data"] if f"{p['group']}/{p['model']}" == MODEL)


def set_price(page, tier: str, inp: str, out: str, cache: str = "") -> None:
    page.select_option("[data-test=price-model]", MODEL)
    page.fill("[data-test=price-tier]", tier)
    page.fill("[data-test=price-input]", inp)
    page.fill("[data-test=price-output]", out)
    page.fill("[data-test=price-cache]", cache)
    page.click("[data-test=set-price]")


def test_operator_sets_a_price_sees_it_and_the_api_returns_it(page, cast, shots):
    sign_in(page, cast.gw, cast.operator, "prices")
    expect(page.locator(ROW)).to_contain_text("unpriced")
    set_price(page, "", "0.0008", "0.002", "0.0002")
    row = page.locator(f"{ROW}[data-tier]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("uniform")
    assert row.locator("td").all_inner_texts()[2:8] == ["all", "0.000800", "0.002000", "0.000200", "CNY",
                                                        "this environment"]
    shots(page, "prices")
    price = api_price(cast)
    assert (price["type"], price["currency"], price["source"]) == ("Uniform", "CNY", "env")
    assert [(t["input"], t["output"], t["cache"]) for t in price["tiers"]] == [("0.000800", "0.002000", "0.000200")]

    # A tier while the price is uniform, and a price finer than a millionth: the API refuses both, in its words.
    set_price(page, "16k-", "0.001", "0.003")
    error = page.locator("[data-test=price-form] + [data-test=price-status] [data-test=notice-error]")
    expect(error).to_contain_text("INVALID_PARAM")
    expect(error).to_contain_text("has a uniform price; delete it before adding tiers")
    set_price(page, "", "0.0000001", "0.002")
    expect(error).to_contain_text("more than 6 decimals")
    expect(error).to_be_in_viewport()
    assert page.inner_text("[data-test=price-status]").strip() == error.inner_text().strip()  # nothing else
    shots(page, "prices-error")
    assert api_price(cast)["tiers"][0]["input"] == "0.000800"  # unchanged

    page.once("dialog", lambda d: d.accept())
    row.locator("[data-test=delete-price]").click()
    expect(page.locator(ROW)).to_contain_text("unpriced")
    assert api_price(cast)["type"] == "Unpriced"


def test_tiered_price_one_tier_at_a_time(page, cast, shots):
    sign_in(page, cast.gw, cast.operator, "prices")
    set_price(page, "0-16k", "0.001", "0.002")
    expect(page.locator(f"{ROW}[data-tier='0-16k']")).to_have_count(1)
    set_price(page, "16k-", "0.004", "0.008", "0.001")
    rows = page.locator(f"{ROW}[data-tier]")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("tiered")
    assert rows.nth(1).locator("td").all_inner_texts()[2:6] == ["16k-", "0.004000", "0.008000", "0.001000"]
    shots(page, "prices-tiered")
    price = api_price(cast)
    assert price["type"] == "Tiered" and [t["tier"] for t in price["tiers"]] == ["0-16k", "16k-"]
    page.once("dialog", lambda d: d.accept())
    rows.nth(1).locator("[data-test=delete-price]").click()
    expect(rows).to_have_count(1)
    assert [t["to"] for t in api_price(cast)["tiers"]] == [16000]


def test_a_server_key_reads_prices_and_sets_none(page, cast):
    cast.gw.admin.prices.set_price(cast.gw.env_id, "cloudbase", "gemma-3-270m", "0.1", "0.25")
    sign_in(page, cast.gw, cast.server, "prices")
    expect(page.locator(f"{ROW}[data-tier]")).to_contain_text("0.250000")
    expect(page.locator("main")).to_contain_text("Only an operator can set prices.")
    assert page.locator("[data-test=price-form]").count() == 0
    assert page.locator("[data-test=delete-price]").count() == 0
