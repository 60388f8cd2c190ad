"""The console's usage page answers "what did key X cost this month, by model", in headless Chromium: pick the
key and the month, read the model table, to the micro-unit of what the ledger billed that key."""
import time

import pytest
from playwright.sync_api import expect

from tests.console.test_console import sign_in
from tests.support.admin_plane import make_cast
from tests.support.ledger import wait_for_records

MODEL = "gemma-3-270m"


@pytest.fixture
def cast(gateway):
    return make_cast(gateway)


def ask(gw, text: str, key: str | None = None):
    resp = gw.chat({"model": MODEL, "messages": [{"role": "user", "content": text}]}, key=key)
    assert resp.status_code == 200, resp.text


def test_one_keys_cost_this_month_by_model(page, cast, shots):
    gw = cast.gw
    gw.admin.prices.set_price(gw.env_id, "cloudbase", MODEL, "0.0123", "0.0456")
    team_b, team_b_key = gw.admin.create_key(gw.env_id, name="team-b")
    gw.wait_for_snapshot()
    ask(gw, "one")
    ask(gw, "two, a little longer")
    ask(gw, "from team b, with several more words in it", key=team_b_key)
    rows = wait_for_records(gw.admin.store, gw.env_id, 3)
    billed = sum(r.cost_micros for r in rows if r.key_id == team_b.id)
    everyone = sum(r.cost_micros for r in rows)
    assert 0 < billed < everyone and all(r.currency == "CNY" for r in rows)
    as_text = lambda micros: f"CNY {micros // 10**6}.{micros % 10**6:06d}"  # noqa: E731

    sign_in(page, gw, cast.operator, "usage")
    expect(page.locator("[data-test=total-5]")).to_have_text(as_text(everyone))
    page.select_option("[data-test=usage-key]", team_b.id)
    expect(page.locator("[data-test=total-5]")).to_have_text(as_text(billed))
    page.select_option("[data-test=usage-days]", "month")
    by_model = page.locator("[data-test=by-model] tbody tr")
    expect(by_model).to_have_count(1)
    expect(by_model.first).to_contain_text(as_text(billed))
    cells = by_model.first.locator("td").all_inner_texts()
    assert (cells[0], cells[1], cells[-1]) == (MODEL, "1", as_text(billed))
    expect(page.locator("[data-test=by-key]")).to_contain_text(f"{team_b.prefix}… team-b")
    shots(page, "usage-key-month")

    page.select_option("[data-test=usage-days]", "lastMonth")
    expect(page.locator("main")).to_contain_text("No traffic in this period.")
    expect(page.locator("[data-test=total-0]")).to_have_text("0")
    page.select_option("[data-test=usage-key]", "")
    page.select_option("[data-test=usage-days]", "range")
    day = time.strftime("%Y-%m-%d", time.gmtime(rows[0].created_at))
    day_before = time.strftime("%Y-%m-%d", time.gmtime(rows[0].created_at - 86400))
    page.fill("[data-test=usage-from]", day_before)
    page.fill("[data-test=usage-to]", day_before)
    page.click("[data-test=usage-range]")
    expect(page.locator("main")).to_contain_text("No traffic in this period.")
    page.fill("[data-test=usage-to]", day)
    page.click("[data-test=usage-range]")
    expect(page.locator("[data-test=total-5]")).to_have_text(as_text(everyone))
    expect(page.locator("[data-test=total-0]")).to_have_text("3")
