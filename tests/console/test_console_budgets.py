"""The console's Budgets page in headless Chromium: an operator sets a key's money budget and the environment's
token budget, sees a billed request's cost as the spend against the limit, caps the key at what it spent (and the
gateway refuses its next request), sees the API's refusal of a bad amount, and deletes a budget."""
import time

import pytest
from playwright.sync_api import expect

from cbgate.core.budgets import format_amount
from tests.console.test_console import sign_in
from tests.support.admin_plane import make_cast
from tests.support.ledger import wait_for_records

ASK = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


@pytest.fixture
def cast(gateway):
    return make_cast(gateway)


def api_budgets(cast) -> list[dict]:
    resp = cast.call("GET", f"/admin/v1/envs/{cast.gw.env_id}/budgets", cast.operator)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def set_budget(page, key_id: str, period: str, kind: str, amount: str) -> None:
    page.select_option("[data-test=budget-key]", key_id)
    page.select_option("[data-test=budget-period]", period)
    page.select_option("[data-test=budget-kind]", kind)
    page.fill("[data-test=budget-amount]", amount)
    page.click("[data-test=set-budget]")


def next_month() -> str:
    now = time.gmtime()
    year, month = (now.tm_year + 1, 1) if now.tm_mon == 12 else (now.tm_year, now.tm_mon + 1)
    return f"{year:04d}-{month:02d}-01 00:00 UTC"


def test_a_keys_budget_shows_the_spend_of_a_billed_request_and_caps_it(page, cast, shots):
    gw = cast.gw
    key = next(k for k in gw.admin.list_keys(gw.env_id) if k.kind == "server")
    gw.admin.prices.set_price(gw.env_id, "cloudbase", "gemma-3-270m", "10", "20")
    gw.wait_for_snapshot()
    sign_in(page, gw, cast.operator, "budgets")
    expect(page.locator("main")).to_contain_text("No budget yet.")
    set_budget(page, key.id, "month", "money", "2.50")
    row = page.locator("[data-test=budgets] tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("[data-test=budget-spent]")).to_have_text("0.00 CNY / 2.50 CNY (0%)")
    expect(row).to_contain_text(f"{key.prefix}…")
    expect(row).to_contain_text(next_month())
    [budget] = api_budgets(cast)
    assert (budget["key_id"], budget["kind"], budget["period"], budget["limit"], budget["currency"]) == (
        key.id, "money", "month", "2.50", "CNY")

    answer = gw.chat(ASK)
    assert answer.status_code == 200, answer.text
    [record] = wait_for_records(gw.admin.store, gw.env_id, 1)
    spent = format_amount(record.cost_micros)
    assert record.cost_micros > 0 and record.key_id == key.id
    page.reload()
    share = round(100 * record.cost_micros / 2_500_000)
    expect(row.locator("[data-test=budget-spent]")).to_have_text(f"{spent} CNY / 2.50 CNY ({share}%)")
    shots(page, "budgets")

    set_budget(page, key.id, "month", "money", spent)  # the same key and period: its limit replaced
    expect(row.locator("[data-test=budget-spent]")).to_have_text(f"{spent} CNY / {spent} CNY (100%)")
    refused = gw.chat(ASK)
    assert refused.status_code == 429 and refused.json()["code"] == "EXCEED_TOKEN_QUOTA_LIMIT"
    assert [b["limit"] for b in api_budgets(cast)] == [spent]


def test_a_token_budget_a_refused_amount_and_a_delete(page, cast, shots):
    gw = cast.gw
    sign_in(page, gw, cast.operator, "budgets")
    set_budget(page, "", "day", "money", "12.5.0")
    error = page.locator("[data-test=budget-form] + [data-test=budget-status] [data-test=notice-error]")
    expect(error).to_contain_text("INVALID_PARAM")
    set_budget(page, "", "day", "tokens", "many")
    expect(page.locator("[data-test=budget-currency]")).to_be_hidden()  # a token budget has no currency
    expect(error).to_contain_text("tokens must be a whole number")
    expect(error).to_be_in_viewport()
    shots(page, "budgets-error")
    assert api_budgets(cast) == []

    set_budget(page, "", "day", "tokens", "100000")
    row = page.locator("[data-test=budgets] tbody tr")
    expect(row).to_contain_text("whole environment")
    expect(row.locator("[data-test=budget-spent]")).to_have_text("0 tokens / 100,000 tokens (0%)")
    assert gw.chat(ASK).status_code == 200
    [record] = wait_for_records(gw.admin.store, gw.env_id, 1)
    page.reload()
    used = record.prompt_tokens + record.completion_tokens
    expect(row.locator("[data-test=budget-spent]")).to_have_text(f"{used:,} tokens / 100,000 tokens (0%)")
    assert api_budgets(cast)[0]["spent"] == used > 0
    page.once("dialog", lambda d: d.accept())
    row.locator("[data-test=delete-budget]").click()
    expect(page.locator("main")).to_contain_text("No budget yet.")
    assert api_budgets(cast) == []


def test_a_server_key_reads_its_budgets_and_sets_none(page, cast):
    gw = cast.gw
    gw.admin.budgets.set_budget(gw.env_id, None, "total", tokens=5000)
    gw.wait_for_snapshot()
    sign_in(page, gw, cast.server, "budgets")
    expect(page.locator("[data-test=budgets] tbody tr")).to_contain_text("never")
    expect(page.locator("main")).to_contain_text("Only an operator can set budgets.")
    assert page.locator("[data-test=budget-form]").count() == 0
    assert page.locator("[data-test=delete-budget]").count() == 0
