"""One flattening of a chat message into text: the embedded engine's prompt, the token estimate and the
Responses compaction transcript read the same text from the same mixed-content conversation."""
from __future__ import annotations

from cbgate.core.context import transcript
from cbgate.protocol.message_text import message_text
from cbgate.providers.local.messages import engine_messages
from cbgate.tokens import MESSAGE_OVERHEAD, REPLY_PRIMER, prompt_tokens

CONVERSATION = [
    {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                                 {"type": "text", "text": "And what is the weather there?"}]},
    {"role": "assistant", "content": "Let me look it up.",
     "tool_calls": [{"id": "c1", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "18 C, sunny"}]},
    {"role": "assistant", "content": None,
     "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "clock", "arguments": "{}"}}]},
]
TEXTS = ["What is in this picture?\nAnd what is the weather there?",
         "Let me look it up.\n[calls weather({\"city\": \"Paris\"})]",
         "18 C, sunny",
         "[calls clock({})]"]


def test_the_flattening_keeps_text_and_tool_calls_and_drops_images():
    assert [message_text(m) for m in CONVERSATION] == TEXTS


def test_the_engine_prompt_the_token_estimate_and_the_compaction_transcript_read_the_same_text():
    engine = [m["content"] for m in engine_messages(CONVERSATION)]
    counted: list[str] = []
    tokens = prompt_tokens(CONVERSATION, lambda text: counted.append(text) or len(text))
    summarized = transcript(CONVERSATION).split("\n\n")

    assert engine == TEXTS
    assert counted == TEXTS
    assert tokens == REPLY_PRIMER + sum(MESSAGE_OVERHEAD + len(t) for t in TEXTS)
    assert summarized == [f"{who}: {text}" for who, text in
                          zip(["user", "assistant", "tool result", "assistant"], TEXTS)]


def test_the_engine_reads_tool_results_as_user_turns():
    assert [m["role"] for m in engine_messages(CONVERSATION)] == ["user", "assistant", "user", "assistant"]
