"""The chat messages a local model reads: plain text per turn in the roles every chat template knows."""
from __future__ import annotations

from cbgate.protocol.message_text import message_text

ROLE_FOR = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def engine_messages(messages: list[dict]) -> list[dict]:
    """Each message flattened to its text (`message_text`); tool results and function messages become user
    turns: the model has no tool role."""
    return [{"role": ROLE_FOR.get(m["role"], "user"), "content": message_text(m)} for m in messages]
