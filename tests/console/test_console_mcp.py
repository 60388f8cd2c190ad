"""The console's MCP page in headless Chromium: add a server (its header secret never comes back), see it
listed with the path clients use, switch it off, and see its tool calls by outcome."""
from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from tests.console.test_console import sign_in
from tests.mcp.test_mcp_faults import modern_call
from tests.support.admin_plane import make_cast
from tests.support.ledger import wait_for_records

HEADER_SECRET = "console-mcp-canary-93f1"


@pytest.fixture
def mcp_cast(tmp_path):
    from tests.support.gateway import start_in_thread
    from tests.support.mcp_server import start_mcp_server
    server = start_mcp_server()
    gw = start_in_thread(tmp_path / "data", env={"CBGATE_UPSTREAM_ALLOW": "127.0.0.1"})
    yield make_cast(gw), server
    gw.stop()
    server.stop()


def test_add_an_mcp_server_and_see_its_calls(page, mcp_cast, shots):
    cast, server = mcp_cast
    sign_in(page, cast.gw, cast.operator, "mcp")
    page.fill("[data-test=new-mcp-name]", "tools")
    page.fill("[data-test=new-mcp-url]", server.url)
    page.fill("[data-test=new-mcp-headers]", f"X-Api-Token: {HEADER_SECRET}")
    page.click("[data-test=create-mcp]")
    row = page.locator("[data-test=mcp-services] tr", has_text="tools")
    expect(row).to_contain_text("/v1/cloudrun/tools/messages")
    expect(row).to_contain_text("set (hidden)")
    assert HEADER_SECRET not in page.content()

    call, headers = modern_call(1, "secret", {})
    gw = cast.gw
    answer = requests.post(f"{gw.url}/v1/cloudrun/tools/messages", json=call, headers={**gw.headers(), **headers},
                           timeout=30)
    assert answer.status_code == 200
    wait_for_records(gw.admin.store, gw.env_id, 1, lambda r: r.surface == "mcp")
    page.reload()
    expect(page.locator("[data-test=mcp-calls]")).to_contain_text("secret")
    page.locator("[data-mcp-switch=tools]").uncheck()
    expect(page.locator("[data-test=mcp-status]")).to_be_empty()
    shots(page, "mcp")
    assert gw.admin.mcp.show(gw.env_id, "tools").enabled is False
