"""The chat messages a local model reads: text per turn in the roles every chat template knows, plus the image
or audio parts of a model whose deployment declares that it reads them (llama-server with an mmproj)."""
from __future__ import annotations

from cbgate.protocol.message_text import message_text
from cbgate.providers.base import Inputs

ROLE_FOR = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def media_parts(inputs: Inputs) -> frozenset[str]:
    """The content part types besides text that an engine with these declared inputs is sent."""
    return frozenset(kind for kind, reads in (("image_url", inputs.vision), ("input_audio", inputs.audio_input))
                     if reads)


def _content(message: dict, media: frozenset[str]):
    """The text, or, when the message carries parts the model reads, its text and those parts in their order."""
    content = message.get("content")
    if not isinstance(content, list) or not any(isinstance(p, dict) and p.get("type") in media for p in content):
        return message_text(message)
    parts = [p for p in content if isinstance(p, dict) and (p.get("type") in media or p.get("type") == "text")]
    calls = message_text({"tool_calls": message.get("tool_calls")})
    return parts + ([{"type": "text", "text": calls}] if calls else [])


def engine_messages(messages: list[dict], media: frozenset[str] = frozenset()) -> list[dict]:
    """Each message flattened to its text (`message_text`), or its text and the media parts the model reads;
    tool results and function messages become user turns: the model has no tool role."""
    return [{"role": ROLE_FOR.get(m["role"], "user"), "content": _content(m, media)} for m in messages]
