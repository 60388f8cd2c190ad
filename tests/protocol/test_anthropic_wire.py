"""The pure OpenAI <-> Messages translation, for the cases the gateway tests do not reach."""
from __future__ import annotations

import pytest

from cbgate.errors import ModelParamInvalid
from cbgate.protocol.anthropic_wire import StreamTranslator, from_message, to_request
from cbgate.protocol.chat_response import ChunkFactory


def request(**extra) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_openai_only_fields_are_dropped_and_a_named_tool_choice_is_kept():
    body = to_request(request(logprobs=True, parallel_tool_calls=False, seed=3,
                              tool_choice={"type": "function", "function": {"name": "f"}}), "up", 100, False)
    assert "logprobs" not in body and "parallel_tool_calls" not in body and "seed" not in body
    assert body["tool_choice"] == {"type": "tool", "name": "f"}


def test_several_choices_are_refused_as_a_bad_parameter():
    with pytest.raises(ModelParamInvalid, match="`n`"):
        to_request(request(n=2), "up", 100, False)


def test_turns_of_one_role_are_merged_and_image_urls_kept():
    body = to_request(request(messages=[
        {"role": "developer", "content": "rule one"}, {"role": "system", "content": "rule two"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://img.example/x.png"}}]},
        {"role": "assistant", "content": "b"}]), "up", 100, False)
    assert body["system"] == "rule one\n\nrule two"
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"},
                                     {"type": "image", "source": {"type": "url", "url": "https://img.example/x.png"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "b"}]}]


def test_cache_tokens_count_as_prompt_and_refusal_maps_to_content_filter():
    completion, usage, _ = from_message({"type": "message", "content": [{"type": "text", "text": "no"}],
                                         "stop_reason": "refusal", "usage": {
                                             "input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 1}},
                                        ChunkFactory("pub"))
    assert completion["choices"][0]["finish_reason"] == "content_filter" and completion["model"] == "pub"
    assert (usage.prompt_tokens, usage.completion_tokens) == (105, 1)


def test_stream_usage_adds_up_from_start_and_delta_events():
    translator = StreamTranslator(ChunkFactory("pub"))
    translator.feed({"type": "message_start", "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}})
    translator.feed({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}})
    assert (translator.usage().prompt_tokens, translator.usage().completion_tokens) == (7, 9)
    assert translator.finish_reason == "stop"
