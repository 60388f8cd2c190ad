"""The one prompt-token estimate: OpenAI's chat format around the text of the messages, with the text
counted by a rule the caller picks. Billing counts with cl100k (providers/token_estimate.py) and, until
that encoding is loaded or where there is none, with `rough_count`; admission reserves with
`generous_count`, which errs high so that one reservation bounds what a request can overspend."""
from __future__ import annotations

from typing import Callable

from cbgate.protocol.message_text import is_text_part, message_text

MESSAGE_OVERHEAD = 4  # tokens the chat format adds around each message
REPLY_PRIMER = 3  # tokens that prime the assistant's reply
NON_TEXT_ALLOWANCE = 512  # what admission reserves for each image or other non-text part


def non_text_parts(message: dict) -> int:
    content = message.get("content")
    if isinstance(content, str) or not content:
        return 0
    return sum(1 for p in content if not is_text_part(p))


def rough_count(text: str) -> int:
    """About cl100k's rate for English (four bytes a token), without loading it."""
    return max(1, len(text.encode()) // 4) if text else 0


def generous_count(text: str) -> int:
    """Two characters a token: above cl100k's count for English and most other text, cheap for every
    request (cl100k costs ~7 us for a 250-character message, this well under 1 us)."""
    return len(text) // 2


def prompt_tokens(messages: list[dict], count_text: Callable[[str], int] = rough_count,
                  non_text_allowance: int = 0) -> int:
    """The prompt's tokens: each message's text as `count_text` counts it, the format's overhead, and
    `non_text_allowance` for each image or other non-text part."""
    total = REPLY_PRIMER
    for m in messages:  # every request, once or twice: a loop, and a message of plain text needs no flattening
        content = m.get("content")
        if type(content) is str and not m.get("tool_calls"):
            total += MESSAGE_OVERHEAD + count_text(content)  # what message_text(m) is then
        else:
            total += MESSAGE_OVERHEAD + count_text(message_text(m)) + non_text_allowance * non_text_parts(m)
    return total
