"""The one flattening of a chat message into plain text: what the embedded engine's prompt shows, what
the token estimate counts and what a compaction transcript gives the summarizing model. One rule, so a
prompt is billed for the text a model reads."""
from __future__ import annotations

from typing import Any


def content_text(content: Any) -> str:
    """A message's content as text: a string as it is, the text parts of a list one per line (images and
    other non-text parts carry no text), nothing for none."""
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in content or () if is_text_part(p))


def is_text_part(part: Any) -> bool:
    return isinstance(part, dict) and isinstance(part.get("text"), str)


def message_text(message: dict) -> str:
    """The text a message carries: its content's text, then each of its tool calls on a line of its own as
    `[calls name(arguments)]`. A tool result is its content (the caller says whose turn it was)."""
    text = content_text(message.get("content"))
    lines = [text] if text else []
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            lines.append(f"[calls {function.get('name', '')}({function.get('arguments', '')})]")
    return "\n".join(lines)
