"""The egress policy for tenant-configured upstream URLs: non-public addresses are refused unless the
operator allows them, when the URL is checked and again at every connect (DNS rebinding)."""
from __future__ import annotations

import asyncio
import socket

import pytest

from cbgate.errors import ModelRequestFailed
from cbgate.protocol.chat_request import parse_chat_request
from cbgate.protocol.chat_response import ChunkFactory
from cbgate.providers.base import ModelCall
from cbgate.providers.netguard import EgressPolicy, EgressRefused
from cbgate.providers.registry import ProviderRegistry
from tests.support.gateway import make_admin


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://10.1.2.3/v1", "http://169.254.169.254/latest",
                                 "http://[::1]:80/v1", "http://[::ffff:127.0.0.1]/v1", "http://localhost:80/v1",
                                 "http://100.64.0.1/v1", "http://0.0.0.0/v1"])
def test_non_public_literal_addresses_are_refused(url):
    with pytest.raises(EgressRefused, match="CBGATE_UPSTREAM_ALLOW"):
        EgressPolicy.parse("").check_literal(url)


def test_public_addresses_pass_and_the_operator_can_allow_hosts_and_networks():
    EgressPolicy.parse("").check_literal("https://8.8.8.8/v1")
    policy = EgressPolicy.parse("127.0.0.1, 10.0.0.0/8 ,localhost")
    for url in ("http://127.0.0.1:9/v1", "http://10.200.0.1/v1", "http://localhost/v1"):
        policy.check_literal(url)
    with pytest.raises(EgressRefused):
        policy.check_literal("http://192.168.1.1/v1")


def test_registration_check_resolves_names_and_wants_http():
    policy = EgressPolicy.parse("")
    with pytest.raises(EgressRefused, match="http or https"):
        asyncio.run(policy.check_base_url("file:///etc/passwd"))
    with pytest.raises(EgressRefused, match="loopback|non-public"):
        asyncio.run(policy.check_base_url("http://localhost:9/v1"))


class ScriptedResolver:
    """A name service answering every name with one address (as a rebinding attacker's would)."""

    def __init__(self, address: str):
        self.address = address

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": self.address, "port": port, "family": socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self):
        pass


def call_through(tmp_path, base_url: str, allow: str = "", resolver=None) -> dict:
    """One chat call through a guarded (tenant) adapter built by the registry, as model groups build them."""
    settings = make_admin(tmp_path / "data").settings
    settings = type(settings)(**{**vars(settings), "env_vars": {"CBGATE_UPSTREAM_ALLOW": allow}})

    async def run():
        registry = ProviderRegistry(settings)
        if resolver is not None:
            registry.upstream.resolver = resolver
        await registry.start()
        try:
            adapter = registry.build_upstream("openai", name="tenant-group", base_url=base_url, api_key="k",
                                              guarded=True)
            request = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
            return (await adapter.complete(ModelCall(request, ChunkFactory("m"), "rid"))).body
        finally:
            await registry.close()

    return asyncio.run(run())


def test_a_tenant_url_to_loopback_is_refused_unless_allowed(tmp_path, fake):
    with pytest.raises(ModelRequestFailed, match="CBGATE_UPSTREAM_ALLOW"):
        call_through(tmp_path, fake.url)
    assert fake.chat_requests == []
    assert call_through(tmp_path, fake.url, allow="127.0.0.1")["choices"]
    assert len(fake.chat_requests) == 1


def test_a_name_that_resolves_to_loopback_at_connect_time_is_refused(tmp_path, fake):
    rebinding = ScriptedResolver("127.0.0.1")
    url = f"http://upstream.example.com:{fake.port}/v1"
    with pytest.raises(ModelRequestFailed, match="non-public"):
        call_through(tmp_path, url, resolver=rebinding)
    assert fake.chat_requests == []
    assert call_through(tmp_path, url, allow="upstream.example.com", resolver=rebinding)["choices"]
    assert call_through(tmp_path, url, allow="127.0.0.0/8", resolver=rebinding)["choices"]

