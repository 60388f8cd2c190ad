"""The check a model group runs on creation: does the upstream answer with this secret?"""
from __future__ import annotations

import os

import pytest

from cbgate.core.group_admin import UpstreamCheckFailed, check_upstream
from tests.support.gateway import make_admin


def check_through(tmp_path, protocol: str, base_url: str, key: str) -> None:
    """The check `group create` runs, under an egress policy that lets it reach the loopback fake."""
    settings = make_admin(tmp_path / "data", {**os.environ, "CBGATE_UPSTREAM_ALLOW": "127.0.0.1"}).settings
    check_upstream(settings, "g", protocol, base_url, key)


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_the_creation_check_says_when_the_secret_is_refused(tmp_path, fake, protocol):
    fake.require_key = "right-key"
    base = fake.url if protocol == "openai" else fake.root
    check_through(tmp_path, protocol, base, "right-key")
    with pytest.raises(UpstreamCheckFailed, match="401: invalid api key"):
        check_through(tmp_path, protocol, base, "wrong-key")
