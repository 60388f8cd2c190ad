"""The chat request body most tests send."""
from __future__ import annotations

EMBEDDED_MODEL = "gemma-3-270m"  # the catalog's embedded model, served by the test engine


def ask(text: str = "hello there", model: str = EMBEDDED_MODEL, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}
