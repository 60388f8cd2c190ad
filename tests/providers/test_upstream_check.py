"""The check a model group runs on creation: does the upstream answer with this secret?"""
from __future__ import annotations

import asyncio

import pytest

from cbgate.errors import ModelRequestFailed
from cbgate.providers.registry import ProviderRegistry
from tests.support.gateway import make_admin


def check_through(tmp_path, protocol: str, base_url: str, key: str) -> None:
    """A group's creation check: does the upstream answer its model list with this secret?"""
    settings = make_admin(tmp_path / "data").settings

    async def run():
        registry = ProviderRegistry(settings)
        await registry.start()
        try:
            await registry.build_upstream(protocol, name="g", base_url=base_url, api_key=key).check()
        finally:
            await registry.close()

    asyncio.run(run())


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_the_creation_check_says_when_the_secret_is_refused(tmp_path, fake, protocol):
    fake.require_key = "right-key"
    base = fake.url if protocol == "openai" else fake.root
    check_through(tmp_path, protocol, base, "right-key")
    with pytest.raises(ModelRequestFailed, match="401: invalid api key"):
        check_through(tmp_path, protocol, base, "wrong-key")
