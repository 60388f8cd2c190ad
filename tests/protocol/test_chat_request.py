"""Parsing a chat completions body into the typed request, without a server: the field a refusal names,
and the defaults a valid body gets."""
from __future__ import annotations

import pytest

from cbgate.errors import ModelParamInvalid, ModelParamRequired
from cbgate.protocol.chat_request import parse_chat_request

USER = [{"role": "user", "content": "hi"}]


def test_a_minimal_body_gets_the_defaults():
    req = parse_chat_request({"model": "m", "messages": USER})
    assert (req.model, req.stream, req.include_usage, req.max_tokens, req.n) == ("m", False, False, None, None)


def test_usage_is_included_only_for_streams_that_ask():
    assert parse_chat_request({"model": "m", "messages": USER, "stream": True,
                               "stream_options": {"include_usage": True}}).include_usage
    assert not parse_chat_request({"model": "m", "messages": USER,
                                   "stream_options": {"include_usage": True}}).include_usage


def test_max_completion_tokens_stands_in_for_max_tokens():
    assert parse_chat_request({"model": "m", "messages": USER, "max_completion_tokens": 7}).max_tokens == 7


@pytest.mark.parametrize("body", [{"messages": USER}, {"model": "", "messages": USER}])
def test_model_is_required(body):
    with pytest.raises(ModelParamRequired, match="model"):
        parse_chat_request(body)


@pytest.mark.parametrize("extra, field", [
    ({"messages": []}, "messages"), ({"messages": "hi"}, "messages"), ({"stream": "yes"}, "stream"),
    ({"temperature": 3}, "temperature"), ({"top_p": -0.1}, "top_p"), ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": True}, "max_tokens"), ({"seed": 2 ** 64}, "seed"), ({"stream_options": []}, "stream_options"),
    ({"presence_penalty": 9}, "presence_penalty"), ({"response_format": "json"}, "response_format"),
])
def test_a_bad_field_is_named(extra, field):
    with pytest.raises(ModelParamInvalid, match=field):
        parse_chat_request({"model": "m", "messages": USER, **extra})
