"""The Agents page in headless Chromium: add an agent, chat with it over its AG-UI stream (text and a
tool call shown as they stream), delete it."""
import json

import pytest
from playwright.sync_api import expect

from cbgate.core.agent_admin import AgentSpec
from tests.console.test_console import sign_in
from tests.support.admin_plane import make_cast
from tests.support.fake_upstream import Reply, start_fake_upstream
from tests.support.gateway import start_in_thread
from tests.support.mcp_server import start_mcp_server

SECRET = "sk-console-agents-upstream-7"


@pytest.fixture
def cast(gateway):
    return make_cast(gateway)


def test_add_an_agent_chat_with_it_and_delete_it(page, cast, shots):
    gw = cast.gw
    sign_in(page, gw, cast.operator, "agents")
    expect(page.locator("main")).to_contain_text("No agent in this environment yet.")
    page.fill("[data-test=agent-name]", "helper")
    page.fill("[data-test=agent-model]", "gemma-3-270m")
    page.fill("[data-test=agent-instructions]", "Be brief.")
    page.fill("[data-test=agent-welcome]", "Hi there")
    page.click("[data-test=create-agent]")
    expect(page.locator("[data-test=agent-table]")).to_contain_text("cloudbase/gemma-3-270m")
    [agent] = gw.admin.agents.list(gw.env_id)[0]
    assert (agent.name, agent.instructions, agent.welcome) == ("helper", "Be brief.", "Hi there")

    page.fill("[data-test=agent-message]", "hello agent")
    page.click("[data-test=agent-send]")
    expect(page.locator("[data-test=agent-answer]").first).to_have_text("echo: hello agent")
    shots(page, "agents")

    page.fill("[data-test=agent-name]", "helper")
    page.fill("[data-test=agent-model]", "no-such-model")
    page.click("[data-test=create-agent]")
    expect(page.locator("[data-test=agent-status]")).to_contain_text("INVALID_PARAM")

    page.on("dialog", lambda dialog: dialog.accept())
    page.click("[data-test=delete-agent-helper]")
    expect(page.locator("main")).to_contain_text("No agent in this environment yet.")
    assert gw.admin.agents.list(gw.env_id)[1] == 0


@pytest.fixture
def upstream_cast(tmp_path):
    """A gateway whose env has a custom group on a fake upstream (the scripted engine makes no tool calls)."""
    fake = start_fake_upstream(require_key=SECRET)
    gw = start_in_thread(tmp_path / "data", env={"CBGATE_UPSTREAM_ALLOW": "127.0.0.1",
                                                 "CBGATE_SECRET_KEY": "console-agents-operator-key"})
    gw.admin.groups.create_group(gw.env_id, "fakeup", fake.url, ["m-tools"], api_key=SECRET, check=False)
    yield make_cast(gw), fake
    gw.stop()
    fake.stop()


def test_tool_calls_show_as_they_stream(page, upstream_cast):
    cast, fake = upstream_cast
    gw = cast.gw
    gw.admin.agents.create(gw.env_id, AgentSpec(name="tooly", model="m-tools", group="fakeup"))
    call = {"id": "call-1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
    fake.script(Reply(content="", tool_calls=[call]))
    sign_in(page, gw, cast.operator, "agents")
    page.fill("[data-test=agent-tools]", json.dumps([{"name": "get_weather", "description": "the weather",
                                                      "parameters": {"type": "object"}}]))
    page.fill("[data-test=agent-message]", "weather in Oslo?")
    page.click("[data-test=agent-send]")
    expect(page.locator("[data-test=tool-call]")).to_have_text('Tool call: get_weather({"city":"Oslo"})')


def test_an_agent_with_an_mcp_service_shows_the_gateways_tool_call_and_its_result(page, upstream_cast):
    cast, fake = upstream_cast
    gw = cast.gw
    server = start_mcp_server()
    try:
        gw.admin.mcp.create(gw.env_id, "tools", server.url)
        sign_in(page, gw, cast.operator, "agents")
        page.fill("[data-test=agent-name]", "calc")
        page.fill("[data-test=agent-model]", "m-tools")
        page.fill("[data-test=agent-group]", "fakeup")
        page.fill("[data-test=agent-mcp-services]", "tools")
        page.click("[data-test=create-agent]")
        expect(page.locator("[data-test=agent-table]")).to_contain_text("fakeup/m-tools + MCP tools")
        call = {"id": "call-add", "type": "function", "function": {"name": "tools__add", "arguments": "{\"a\":2,\"b\":3}"}}
        fake.script(Reply(content="", tool_calls=[call]), Reply(content="It is 5."), Reply(content="Yes, 5."))
        page.fill("[data-test=agent-message]", "2+3?")
        page.click("[data-test=agent-send]")
        expect(page.locator("[data-test=tool-call]")).to_have_text('Tool call: tools__add({"a":2,"b":3})')
        expect(page.locator("[data-test=tool-result]")).to_have_text("Tool result: 5")
        expect(page.locator("[data-test=agent-answer]")).to_have_text("It is 5.")
        # the next turn sends the thread as it was said: the tool's message after the call, then the answer
        page.fill("[data-test=agent-message]", "sure?")
        page.click("[data-test=agent-send]")
        expect(page.locator("[data-test=agent-answer]").last).to_have_text("Yes, 5.")
        sent = json.loads([r for r in fake.server.requests if r.path.endswith("/chat/completions")][-1].body)
        assert [m["role"] for m in sent["messages"]][-4:] == ["assistant", "tool", "assistant", "user"]
    finally:
        server.stop()
