"""Chat templates: the GGUF's own Jinja template when it carries one, else the family's turn format."""
from __future__ import annotations

import json
from typing import Callable

GEMMA_STOP_TOKENS = ("<end_of_turn>", "<start_of_turn>")


def message_text(message: dict) -> str:
    """Flatten OpenAI content (string or parts) and tool calls into the text a local model reads."""
    content = message.get("content")
    if isinstance(content, list):
        text = "".join(p.get("text", "") for p in content if p.get("type") == "text")
    else:
        text = content or ""
    calls = message.get("tool_calls")
    if calls:
        text += ("\n" if text else "") + json.dumps(
            [c.get("function", c) for c in calls], ensure_ascii=False)
    return text


def gemma_prompt(messages: list[dict]) -> str:
    """Gemma's turn format. Gemma has no system role: system text opens the first user turn."""
    system = "\n\n".join(message_text(m) for m in messages if m["role"] in ("system", "developer"))
    parts = []
    for m in messages:
        role = m["role"]
        if role in ("system", "developer"):
            continue
        text = message_text(m)
        if role == "assistant":
            parts.append(f"<start_of_turn>model\n{text}<end_of_turn>\n")
            continue
        if system:
            text, system = f"{system}\n\n{text}", ""
        parts.append(f"<start_of_turn>user\n{text}<end_of_turn>\n")
    if system:  # only system messages were sent
        parts.append(f"<start_of_turn>user\n{system}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return "".join(parts)


Render = Callable[[list[dict]], str]


def choose_template(metadata: dict[str, str], eos: str, bos: str) -> tuple[Render, tuple[str, ...]]:
    """Return (render, stop strings) for a model from its GGUF metadata."""
    jinja_source = metadata.get("tokenizer.chat_template")
    if jinja_source:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        formatter = Jinja2ChatFormatter(template=jinja_source, eos_token=eos, bos_token=bos)

        def render(messages: list[dict]) -> str:
            flat = [{"role": m["role"], "content": message_text(m)} for m in messages]
            return formatter(messages=flat).prompt

        return render, (eos,) if eos else ()
    if metadata.get("general.architecture", "").startswith("gemma"):
        return gemma_prompt, GEMMA_STOP_TOKENS
    raise ValueError(
        "the GGUF carries no chat template and its family has no known turn format; "
        "set `chat_format` on the deployment")
