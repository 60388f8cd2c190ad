"""The chat messages a local model reads: plain text per turn in the roles every chat template knows."""
from __future__ import annotations

import json

ROLE_FOR = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def message_text(message: dict) -> str:
    """Flatten OpenAI content (string or parts) and tool calls into the text a local model reads."""
    content = message.get("content")
    if isinstance(content, list):
        text = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    else:
        text = content or ""
    calls = message.get("tool_calls")
    if calls:
        text += ("\n" if text else "") + json.dumps([c.get("function", c) for c in calls], ensure_ascii=False)
    return text


def engine_messages(messages: list[dict]) -> list[dict]:
    """Tool results and function messages become user turns: the model has no tool role."""
    return [{"role": ROLE_FOR.get(m["role"], "user"), "content": message_text(m)} for m in messages]
