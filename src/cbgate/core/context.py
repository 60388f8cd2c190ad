"""A conversation against a model's context window: counting it, truncating it ("auto" drops the earliest
turns, never the newest) and compacting it into a summary written by the same model."""
from __future__ import annotations

from typing import Awaitable, Callable

from cbgate.errors import ModelParamInvalid
from cbgate.protocol.message_text import message_text
from cbgate.protocol.responses_request import summary_message
from cbgate.providers.token_estimate import TokenEstimator

SUMMARY_INSTRUCTIONS = (
    "You compact a conversation so that it can continue without its full text. Write a concise summary of "
    "the conversation below: what the user asked for, the facts and decisions established, the results of "
    "tool calls, and anything still open. Write only the summary.")
SUMMARY_MAX_TOKENS = 1024


class ContextCounter:
    def __init__(self, estimator: TokenEstimator):
        self.estimator = estimator

    async def tokens(self, messages: list[dict]) -> int:
        await self.estimator.load()
        return self.estimator.usage_now(messages, []).prompt_tokens


def turns(messages: list[dict]) -> list[list[dict]]:
    """The conversation split where each user message begins a turn (tool results stay with their call)."""
    out: list[list[dict]] = []
    for message in messages:
        if message["role"] == "user" or not out:
            out.append([message])
        else:
            out[-1].append(message)
    return out


def over_context(tokens: int, max_output: int | None, window: int) -> ModelParamInvalid:
    asked = tokens + (max_output or 0)
    what = f"the input is {tokens} tokens" + (f" and max_output_tokens is {max_output}" if max_output else "")
    return ModelParamInvalid(f"invalid parameter `input`: {what}, {asked - window} tokens over the model's context "
                             f"of {window} tokens; shorten the input or set truncation to \"auto\"")


async def fit(counter: ContextCounter, system: list[dict], conversation: list[dict], window: int | None,
              max_output: int | None, truncation: str) -> list[dict]:
    """The conversation as it fits the window: unchanged, or with its earliest turns dropped ("auto");
    over the window with "disabled" (or with only the newest turn left) is AI_MODEL_PARAM_INVALID."""
    if window is None:
        return conversation
    budget = window - (max_output or 0)
    tokens = await counter.tokens(system + conversation)
    if tokens <= budget:
        return conversation
    if truncation != "auto":
        raise over_context(tokens, max_output, window)
    kept = turns(conversation)
    while len(kept) > 1 and tokens > budget:
        kept.pop(0)
        tokens = await counter.tokens(system + [m for turn in kept for m in turn])
    if tokens > budget:
        raise over_context(tokens, max_output, window)
    return [m for turn in kept for m in turn]


def transcript(messages: list[dict]) -> str:
    """The conversation as the summarizing model reads it: who spoke, then the message's text."""
    return "\n\n".join(f"{_SPEAKER.get(m['role'], m['role'])}: {message_text(m)}" for m in messages)


_SPEAKER = {"tool": "tool result"}


Summarize = Callable[[list[dict], int], Awaitable[str]]  # (summary request messages, max tokens) -> text


async def compact(conversation: list[dict], summarize: Summarize, keep_newest: bool) -> tuple[list[dict], str | None]:
    """The conversation as the model's summary of it, followed by its newest turn when `keep_newest`;
    and the summary (None when there was nothing older to compact)."""
    parts = turns(conversation)
    older = [m for turn in (parts[:-1] if keep_newest else parts) for m in turn]
    if not older:
        return conversation, None
    request = [{"role": "system", "content": SUMMARY_INSTRUCTIONS},
               {"role": "user", "content": transcript(older)}]
    summary = await summarize(request, SUMMARY_MAX_TOKENS)
    return [summary_message(summary)] + (parts[-1] if keep_newest else []), summary
