"""The playground in headless Chromium: a multi-turn chat with its settings, stop, one short-lived key per
browser shared by its tabs, and "copy as curl / Python / JS" snippets that run as they are."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect

from tests.console.test_console import sign_in
from tests.support.admin_plane import make_cast
from tests.support.wait import wait_until


@pytest.fixture
def cast(gateway):
    return make_cast(gateway)


def ask(page, text: str, turn: int) -> str:
    page.fill("[data-test=playground-prompt]", text)
    page.click("[data-test=playground-send]")
    answer = page.locator("[data-test=msg-assistant]").nth(turn)
    expect(answer).to_have_attribute("data-state", "done")
    return answer.locator(".text").inner_text()


def playground_keys(gw) -> list:
    return [k for k in gw.admin.list_keys(gw.env_id) if k.name == "console playground"]


def test_multi_turn_chat_with_settings_and_one_key_per_browser(page, cast, shots):
    gw = cast.gw
    sign_in(page, gw, cast.operator, "playground")
    page.fill("[data-test=playground-system]", "Answer in one line.")
    page.fill("[data-test=playground-temperature]", "0.2")
    page.fill("[data-test=playground-max-tokens]", "64")
    first = ask(page, "first question", 0)  # Gemma's template folds the system prompt into the first turn
    assert first.startswith("echo: ") and first.endswith("first question")
    with page.expect_request(re.compile(r"/chat/completions$")) as sent:
        assert ask(page, "second question", 1) == "echo: second question"
    body = sent.value.post_data_json
    assert body["messages"] == [{"role": "system", "content": "Answer in one line."},
                                {"role": "user", "content": "first question"},
                                {"role": "assistant", "content": first},
                                {"role": "user", "content": "second question"}]
    assert body["temperature"] == 0.2 and body["max_tokens"] == 64 and body["stream"] is True
    stats = page.locator("[data-test=answer-stats]").nth(1).inner_text()
    assert re.fullmatch(r"\d+ tokens · first token \d+ ms · \d+ ms in all", stats), stats
    shots(page, "playground")

    [key] = playground_keys(gw)  # one short-lived key, however many tabs
    assert key.expires_at is not None and key.expires_at - time.time() <= 8 * 3600
    second_tab = page.context.new_page()
    sign_in(second_tab, gw, cast.operator, "playground")
    assert ask(second_tab, "from another tab", 0) == "echo: from another tab"
    assert [k.id for k in playground_keys(gw)] == [key.id]
    second_tab.close()

    page.click("[data-test=sign-out]")
    page.wait_for_selector("[data-test=token]")
    # Signing out revokes this browser's playground key.
    wait_until(lambda: playground_keys(gw)[0].revoked_at, "sign-out to revoke the playground key")


def test_stop_keeps_the_partial_answer_and_new_chat_clears(page, cast):
    cast.gw.engine.script(token_delay=0.1)
    sign_in(page, cast.gw, cast.operator, "playground")
    question = "a question with a long echo to stop half way through"
    page.fill("[data-test=playground-prompt]", question)
    page.click("[data-test=playground-send]")
    answer = page.locator("[data-test=msg-assistant]").first
    expect(answer.locator(".text")).to_have_text(re.compile(r"^echo"))
    page.click("[data-test=playground-stop]")
    expect(answer).to_have_attribute("data-state", "stopped")
    partial = answer.locator(".text").inner_text()
    assert partial.startswith("echo") and len(partial) < len(f"echo: {question}")
    expect(page.locator("[data-test=playground-send]")).to_be_enabled()
    page.click("[data-test=playground-new]")
    expect(page.locator("[data-test=playground-history] .msg")).to_have_count(0)


def snippet(page, kind: str) -> str:
    page.click(f"[data-test=copy-{kind}]")
    expect(page.locator("[data-test=snippet]")).to_have_attribute("data-kind", kind)
    return page.locator("[data-test=snippet]").inner_text()


def test_copy_as_curl_python_and_js_run_as_they_are(page, cast, tmp_path, shots):
    sign_in(page, cast.gw, cast.server, "playground")
    page.fill("[data-test=playground-system]", "It's a test: quotes ' and \" survive.")
    page.fill("[data-test=playground-prompt]", "from a snippet")
    codes = {kind: snippet(page, kind) for kind in ("curl", "python", "js")}
    shots(page, "playground-snippet")
    page.click("[data-test=lang]")
    expect(page.locator("[data-test=playground-send]")).to_have_text("发送")
    keys = page.evaluate("async () => Object.keys((await import('/console/i18n.js')).STRINGS.en)")
    shown = page.inner_text("main")
    assert not [k for k in keys if re.search(r"[A-Z_]", k) and k in shown]  # no string left untranslated
    shots(page, "playground-zh")
    assert all(cast.server not in code for code in codes.values())  # the key comes from the environment
    env = {**os.environ, "CBGATE_API_KEY": cast.server}
    runs = {"curl": ["bash", "-c", codes["curl"]], "python": [sys.executable, "-c", codes["python"]]}
    node = shutil.which("node")
    if node:
        (tmp_path / "chat.mjs").write_text(codes["js"])
        runs["js"] = [node, str(tmp_path / "chat.mjs")]
    for kind, argv in runs.items():
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (kind, done.stderr)
        answer = sse_text(done.stdout) if kind == "curl" else done.stdout  # curl prints the raw stream
        assert answer.rstrip().endswith("from a snippet"), (kind, done.stdout)


def sse_text(stream: str) -> str:
    chunks = [json.loads(line[6:]) for line in stream.splitlines() if line.startswith("data: {")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
