"""The pure validators behind the admin API and the CLI, without a server: what they accept, and that
what they refuse is an InvalidParam whose message says what is wrong."""
from __future__ import annotations

import pytest

from cbgate.core.group_admin import validate_base_url, validate_group_name, validate_models, validate_timeouts
from cbgate.errors import InvalidParam
from cbgate.providers.upstream_http import Timeouts, parse_retry_after


@pytest.mark.parametrize("name", ["mine", "team-a_2", "a" * 64])
def test_group_names_accepted(name):
    validate_group_name(name)


@pytest.mark.parametrize("name, says", [
    ("", "1-64 characters"), ("Mine", "lower-case"), ("2fast", "starting with a letter"), ("a" * 65, "1-64"),
    ("cloudbase-x", "reserved for the catalog"), ("deepseek", "built-in"), (None, "1-64 characters"),
])
def test_group_names_refused(name, says):
    with pytest.raises(InvalidParam, match=says):
        validate_group_name(name)


def test_models_are_trimmed_and_deduplicated_in_order():
    assert validate_models([" b ", "a", "b", ""]) == ["b", "a"]


@pytest.mark.parametrize("models, says", [([], "at least one"), (["  "], "at least one"),
                                           (["bad name"], "not valid"), (["m"] * 1001, "at most 1000")])
def test_models_refused(models, says):
    with pytest.raises(InvalidParam, match=says):
        validate_models(models)


def test_timeouts_come_back_as_seconds():
    assert validate_timeouts(None) is None
    assert validate_timeouts({"total": 90, "connect": 5}) == {"connect": 5.0, "total": 90.0}


@pytest.mark.parametrize("timeouts, says", [({"speed": 1}, "unknown"), ({"total": 0}, "positive"),
                                             ({"total": "soon"}, "timeouts")])
def test_timeouts_refused(timeouts, says):
    with pytest.raises(InvalidParam, match=says):
        validate_timeouts(timeouts)


def test_timeouts_default_when_unset():
    assert Timeouts.from_options(None) == Timeouts()


@pytest.mark.parametrize("url, stored", [("https://api.example.com/v1/", "https://api.example.com/v1"),
                                         ("http://10.0.0.5:8000/v1", "http://10.0.0.5:8000/v1")])
def test_base_urls_accepted_without_trailing_slash(url, stored):
    assert validate_base_url(url) == stored


@pytest.mark.parametrize("url", ["ftp://example.com", "example.com/v1", "https://", "https://h/v1?x=1",
                                 "https://h/v1#top"])
def test_base_urls_refused(url):
    with pytest.raises(InvalidParam):
        validate_base_url(url)


@pytest.mark.parametrize("header, seconds", [(None, None), ("", None), ("7", 7.0), ("-3", 0.0),
                                             ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_retry_after_headers(header, seconds):
    assert parse_retry_after(header) == seconds
