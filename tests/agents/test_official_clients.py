"""The official clients, unchanged, against the Agent API: @cloudbase/ai's bot module and @ag-ui/client's
HttpAgent (node, from tests/js), and curl."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.agents.conftest import tool_call, upstream_messages
from tests.support.fake_upstream import Reply

JS_DIR = Path(__file__).resolve().parents[1] / "js"


def node_check(agents, key: str, agent_id: str, mode: str) -> dict:
    node = shutil.which("node")
    assert node and (JS_DIR / "node_modules" / "@ag-ui" / "client").is_dir(), "run scripts/setup --test first"
    out = subprocess.run([node, str(JS_DIR / "agent_sdk_check.mjs"), agents.gw.url, key, agent_id, mode],
                         capture_output=True, text=True, timeout=120, cwd=JS_DIR)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cloudbase_ai_bot_module_lists_creates_and_chats(agents, fake):
    fake.default = Reply(content="hello from the agent")
    got = node_check(agents, agents.gw.key, agents.upstream_agent, "cloudbase-ai")
    assert "error" not in got, got
    assert agents.upstream_agent in [b["botId"] for b in got["list"]["botList"]] and got["list"]["total"] >= 2
    assert got["get"]["name"] == "upstream"
    assert got["created"]["botId"].startswith("agent-") and got["created"]["agentSetting"] == "Answer briefly."
    assert got["text"] == "hello from the agent"
    assert got["chunks"][-1]["finish_reason"] == "stop" and got["chunks"][-1]["usage"]["totalTokens"] > 0
    assert [r["content"] for r in got["records"]["recordList"]][-2:] == ["hello agent", "hello from the agent"]


def test_cloudbase_ai_bot_module_with_a_publishable_key_may_not_create(agents, fake):
    got = node_check(agents, agents.publishable, agents.local_agent, "cloudbase-ai")
    assert "PERMISSION_DENIED" in got["createError"] and "echo" in got["text"]


def test_ag_ui_http_agent_runs_twice_on_one_thread(agents, fake):
    fake.script(Reply(content="first answer"), Reply(content="second answer"))
    got = node_check(agents, agents.gw.key, agents.upstream_agent, "ag-ui")
    assert "error" not in got, got
    assert got["events"][0] == "RUN_STARTED" and got["events"][-1] == "RUN_FINISHED"
    assert [(m["role"], m["content"]) for m in got["messages"]] == [("user", "hello agent"),
                                                                    ("assistant", "first answer")]
    assert got["secondEvents"][-1] == "RUN_FINISHED"


def test_ag_ui_http_agent_gets_the_tool_call_to_answer(agents, fake):
    call = {"id": "call-sdk", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
    fake.script(Reply(content="", tool_calls=[call]))
    got = node_check(agents, agents.gw.key, agents.upstream_agent, "ag-ui-tool")
    assert "error" not in got, got
    assert "TOOL_CALL_START" in got["events"] and got["events"][-1] == "RUN_FINISHED"
    calls = [m["toolCalls"] for m in got["messages"] if m["toolCalls"]]
    assert calls and calls[0][0]["function"] == {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}


def test_js_sdk_ai_bot_send_message_reads_the_ag_ui_stream(agents, fake):
    fake.default = Reply(content="hello js sdk")
    got = node_check(agents, agents.gw.key, agents.upstream_agent, "js-sdk")
    assert "error" not in got, got
    assert [e["type"] for e in got["events"]][0] == "RUN_STARTED" and got["events"][-1]["type"] == "RUN_FINISHED"
    assert got["text"] == "hello js sdk"
    assert upstream_messages(fake)[-1]["content"] == "hello from js-sdk"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_runs_an_agent_as_the_readme_shows(agents):
    out = subprocess.run(["curl", "-sN", f"{agents.gw.url}/v1/aibot/bots/{agents.local_agent}/send-message",
                          "-H", f"Authorization: Bearer {agents.gw.key}", "-H", "Content-Type: application/json",
                          "-H", "Accept: text/event-stream",
                          "-d", json.dumps({"threadId": "t-curl", "runId": "r-curl",
                                            "messages": [{"id": "1", "role": "user", "content": "hi from curl"}]})],
                         capture_output=True, text=True, timeout=60)
    events = [json.loads(line[6:]) for line in out.stdout.splitlines() if line.startswith("data: ")]
    assert events[0]["type"] == "RUN_STARTED" and events[-1]["type"] == "RUN_FINISHED"
    assert "hi from curl" in "".join(e.get("delta", "") for e in events)


def test_ag_ui_http_agent_sees_the_gateways_mcp_tool_call_and_its_result(agents, fake, tooled):
    fake.script(Reply(content="", tool_calls=[tool_call("call-mcp", "tools__add", {"a": 20, "b": 22})]),
                Reply(content="It is 42."), Reply(content="Still 42."))
    got = node_check(agents, agents.gw.key, tooled.agent, "ag-ui")
    assert "error" not in got, got
    events = got["events"]
    assert events.index("TOOL_CALL_END") < events.index("TOOL_CALL_RESULT") < events.index("TEXT_MESSAGE_START")
    assert events[-1] == "RUN_FINISHED" and got["secondEvents"][-1] == "RUN_FINISHED"
    said = [(m["role"], m["content"]) for m in got["messages"]]
    assert said == [("user", "hello agent"), ("assistant", None), ("tool", "42"), ("assistant", "It is 42.")]
    assert got["messages"][1]["toolCalls"][0]["function"]["name"] == "tools__add"
    # the second turn sent the thread as the client keeps it, the tool's message included, to the model
    assert upstream_messages(fake)[-3:] == [{"role": "tool", "tool_call_id": "call-mcp", "content": "42"},
                                            {"role": "assistant", "content": "It is 42."},
                                            {"role": "user", "content": "and again"}]
