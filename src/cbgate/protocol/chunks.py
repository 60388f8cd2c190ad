"""What a model stream yields, typed: a canonical chunk (an OpenAI `chat.completion.chunk`, as a dict,
or as the ready JSON bytes an OpenAI-compatible upstream sent, passed on unparsed), or a `NativeEvent`:
an event in the client's own protocol from an upstream that speaks it (an Anthropic upstream answering a
Messages client), which the surface passes through as it came, with no round trip through chat chunks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True, slots=True)
class NativeEvent:
    protocol: str  # "anthropic": a Messages stream event
    data: dict

    def text(self) -> str:
        """The answer text it adds (content logging)."""
        delta = self.data.get("delta") if self.data.get("type") == "content_block_delta" else None
        return (delta.get("text") or "") if isinstance(delta, dict) else ""


Chunk = Union[dict, bytes, NativeEvent]
