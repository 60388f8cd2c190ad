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
