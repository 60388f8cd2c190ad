"""Egress policy for tenant-configured upstream URLs: no loopback, private, link-local or other
non-public address unless the operator allows it (`CBGATE_UPSTREAM_ALLOW`, hosts and CIDRs).

The check runs when a URL is registered (`check_base_url`) and again inside the connector's resolver
at every connect, so a name that later resolves elsewhere (DNS rebinding) is still refused.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(ValueError):
    """The operator's policy forbids connecting to this upstream; the message says why."""


def _address(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return ip


@dataclass(frozen=True)
class EgressPolicy:
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, value: str | None) -> EgressPolicy:
        """`CBGATE_UPSTREAM_ALLOW`: a comma list of host names, addresses and CIDRs."""
        hosts, networks = set(), []
        for item in (value or "").split(","):
            item = item.strip().lower()
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.allowed_hosts

    def address_allowed(self, ip: IPAddress) -> bool:
        return ip.is_global or any(ip in net for net in self.allowed_networks)

    def check_address(self, host: str, address: str) -> None:
        ip = _address(address)
        if ip is None or self.host_allowed(host) or self.address_allowed(ip):
            return
        raise EgressRefused(f"upstream host {host} resolves to {ip}, a non-public address; "
                            f"the operator must allow it in CBGATE_UPSTREAM_ALLOW")

    def check_literal(self, url: str) -> None:
        """Refuse a URL whose host is an address (or `localhost`) outside the policy, without DNS."""
        host = (urlsplit(url).hostname or "").lower()
        if not host:
            raise EgressRefused(f"upstream URL {url!r} has no host")
        if host == "localhost" or host.endswith(".localhost"):
            if not self.host_allowed(host):
                raise EgressRefused(f"upstream host {host} is loopback; the operator must allow it in "
                                    f"CBGATE_UPSTREAM_ALLOW")
            return
        if _address(host) is not None:
            self.check_address(host, host)

    async def check_base_url(self, url: str) -> None:
        """Registration-time check: the URL's scheme, and every address its host resolves to now."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise EgressRefused(f"upstream URL {url!r} must use http or https")
        self.check_literal(url)
        host = parts.hostname or ""
        if _address(host) is not None or self.host_allowed(host):
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise EgressRefused(f"upstream host {host} does not resolve: {exc}") from None
        for info in infos:
            self.check_address(host, info[4][0])


class GuardedResolver(AbstractResolver):
    """The connector's resolver for tenant URLs: resolves, then refuses non-public answers."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None):
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        answers = await self.inner.resolve(host, port, family)
        for answer in answers:
            self.policy.check_address(host, answer["host"])
        return answers

    async def close(self) -> None:
        await self.inner.close()
