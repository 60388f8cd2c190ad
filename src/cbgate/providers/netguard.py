"""Egress policy for tenant-configured upstream URLs: no loopback, private, link-local or other
non-public address unless the operator allows it (`CBGATE_UPSTREAM_ALLOW`, hosts and CIDRs).

One check serves every path. `parse_upstream_url` reads a URL exactly as the HTTP client will (yarl:
IDNA/UTS-46, so full-width and ideographic digits and dots and circled digits become the ASCII host the
client really uses), and `EgressPolicy.resolve` turns a host into the addresses to connect to, refusing
any that is not public. `GuardedConnector` calls `resolve` on every connect and connects only to the
addresses it returned (the connection is pinned to what was checked), so the creation check (CLI or
admin API, through the same connector) and serving cannot disagree, and a name that later resolves
elsewhere (DNS rebinding) is still refused.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
_DNS_LABEL = re.compile(r"\A(?!-)[a-z0-9_-]{1,63}(?<!-)\Z")
_NUMERIC_LABEL = re.compile(r"\A(0x[0-9a-f]*|[0-9]+)\Z")
# IPv6 prefixes that are an IPv4 address in their low 32 bits (IPv4-compatible, NAT64 well-known): the
# IPv4 address inside is where a connection goes, so it alone decides.
_EMBEDDING_V4_LOW = (ipaddress.ip_network("::/96"), ipaddress.ip_network("64:ff9b::/96"))
# Local-use NAT64 (RFC 8215): the operator's own translator, and RFC 6052 places the IPv4 address
# according to a prefix length we cannot know, so it is never public.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
# Special-purpose blocks (IANA) that some Python versions' `is_global` still calls global.
_SPECIAL = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "240.0.0.0/4", "2001::/23", "2001:db8::/32", "3fff::/20", "5f00::/16", "fec0::/10"))


class EgressRefused(ValueError):
    """The operator's policy forbids connecting to this upstream; the message says why."""


class InvalidUpstreamURL(EgressRefused):
    """The URL cannot be used at all (syntax, scheme, port, characters); the message says why."""


@dataclass(frozen=True, slots=True)
class UpstreamURL:
    url: URL  # as the HTTP client holds it
    host: str  # normalised: what the connector is asked for, lower case, no brackets, no trailing dot
    port: int
    address: IPAddress | None  # when the host is an address literal


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") or c.isspace() for c in text)


def parse_upstream_url(text: Any) -> UpstreamURL:
    """Read `text` as the HTTP client will, or raise InvalidUpstreamURL saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise InvalidUpstreamURL("the upstream URL must be a non-empty string")
    shown = ascii(text[:200])
    if len(text) > MAX_URL_LENGTH:
        raise InvalidUpstreamURL(f"the upstream URL is longer than {MAX_URL_LENGTH} characters")
    if _has_control(text):
        raise InvalidUpstreamURL(f"upstream URL {shown} contains spaces or control characters")
    try:
        url = URL(text)
        port = url.port
        raw_host = url.raw_host
    except (ValueError, TypeError, UnicodeError) as exc:
        raise InvalidUpstreamURL(f"upstream URL {shown} cannot be read: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise InvalidUpstreamURL(f"upstream URL {shown} must use http or https")
    if url.user is not None or url.password is not None:
        raise InvalidUpstreamURL("the upstream URL may not carry a user or password; use the API key field")
    if not raw_host:
        raise InvalidUpstreamURL(f"upstream URL {shown} has no host")
    if port is None or not 0 < port < 65536:
        raise InvalidUpstreamURL(f"upstream URL {shown} has no usable port")
    host = normalise_host(raw_host)
    return UpstreamURL(url, host, port, literal_address(host))


def normalise_host(host: str) -> str:
    """The form policies compare: lower case, no brackets, no trailing dots, zone id kept."""
    host = host.strip("[]").lower().rstrip(".")
    return host.replace("%25", "%")


def literal_address(host: str) -> IPAddress | None:
    """The address a host names by itself, or None for a DNS name. Refuses numeric IPv4 forms other than
    dotted decimal (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`): resolvers read them as addresses
    in ways that differ between libraries, so they are never guessed at."""
    host = normalise_host(host)
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)  # zone ids (`fe80::1%eth0`) are accepted and kept
        except ValueError:
            raise InvalidUpstreamURL(f"host {ascii(host)} is not a valid IPv6 address") from None
    labels = host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            address = None
        if address is None or str(address) != host:
            raise InvalidUpstreamURL(f"host {ascii(host)} is a numeric address that is not in dotted-decimal "
                                     f"form; write it as a.b.c.d")
        return address
    if len(host) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise InvalidUpstreamURL(f"host {ascii(host)} is not a valid host name")
    return None


def _translated_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address this IPv6 address stands for (mapped, compatible, NAT64 well-known), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    plain = ipaddress.IPv6Address(int(ip))  # without its zone id
    if any(plain in net for net in _EMBEDDING_V4_LOW) and int(plain) > 1:
        return ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF)
    return None


def _tunnelled_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 endpoint of a 6to4 or Teredo address, which is an IPv6 address of its own as well."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def non_public_reason(ip: IPAddress) -> str | None:
    """Why an address is not a public unicast one, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "scoped (zone id)"
        if ipaddress.IPv6Address(int(ip)) in _LOCAL_NAT64:
            return "local-use NAT64"
        translated = _translated_ipv4(ip)
        if translated is not None:  # the prefix itself is reserved; the IPv4 address is the destination
            why = non_public_reason(translated)
            return f"an IPv6 form of {translated}, {why}" if why else None
        tunnelled = _tunnelled_ipv4(ip)
        if tunnelled is not None:  # a public endpoint does not make the IPv6 address public: check both
            why = non_public_reason(tunnelled)
            if why:
                return f"an IPv6 form of {tunnelled}, {why}"
    for test, why in (("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
                      ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                      ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, test):
            return why
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if not ip.is_global or any(ip.version == net.version and ip in net for net in _SPECIAL):
        return "not globally reachable"
    return None


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


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
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                hosts.add(normalise_host(item))
        return cls(frozenset(hosts), tuple(networks))

    def host_allowed(self, host: str) -> bool:
        return normalise_host(host) in self.allowed_hosts

    def check_address(self, host: str, ip: IPAddress) -> None:
        """Refuse `ip` (what `host` names or resolved to) unless it is public or allowed."""
        plain = ipaddress.ip_address(int(ip)) if isinstance(ip, ipaddress.IPv6Address) else ip
        if any(plain in net for net in self.allowed_networks):
            return
        if isinstance(plain, ipaddress.IPv6Address) and plain.ipv4_mapped is not None and any(
                plain.ipv4_mapped in net for net in self.allowed_networks):
            return
        why = non_public_reason(ip)
        if why is not None:
            raise EgressRefused(f"upstream host {ascii(host)[1:-1]} is {ip}, a non-public address ({why}); the operator must allow it "
                                f"in CBGATE_UPSTREAM_ALLOW")

    def check_name(self, name: str) -> None:
        """`localhost` and `*.localhost` are loopback whatever a resolver says (RFC 6761)."""
        if (name == "localhost" or name.endswith(".localhost")) and not self.host_allowed(name):
            raise EgressRefused(f"upstream host {name} is loopback; the operator must allow it in "
                                f"CBGATE_UPSTREAM_ALLOW")

    def check_literal(self, url: str) -> UpstreamURL:
        """Parse `url` and refuse it at once when its host is an address outside the policy (no DNS)."""
        target = parse_upstream_url(url)
        if target.address is not None and not self.host_allowed(target.host):
            self.check_address(target.host, target.address)
        self.check_name(target.host)
        return target

    async def resolve(self, host: str, port: int, resolver: AbstractResolver,
                      family: int = socket.AF_UNSPEC) -> list[dict[str, Any]]:
        """THE egress check: the addresses to connect to for `host`, every one of them checked.

        The connector connects to these answers only, so what was checked is what is reached."""
        name = normalise_host(host)
        address = literal_address(name)
        if address is not None:
            if not self.host_allowed(name):
                self.check_address(name, address)
            return [{"hostname": name, "host": str(address), "port": port, "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                     "proto": 0, "flags": socket.AI_NUMERICHOST}]
        self.check_name(name)
        try:
            answers = await resolver.resolve(name, port, family)
        except OSError as exc:
            raise EgressRefused(f"upstream host {name} does not resolve: {exc.strerror or exc}") from None
        if not self.host_allowed(name):
            for answer in answers:
                resolved = _address(answer["host"])
                if resolved is None:
                    raise EgressRefused(f"upstream host {name} resolved to {answer['host']!r}, not an address")
                self.check_address(name, resolved)
        if not answers:
            raise EgressRefused(f"upstream host {name} does not resolve")
        return answers

    async def check_base_url(self, url: str, resolver: AbstractResolver | None = None) -> UpstreamURL:
        """The check without a connection (for tools): parse, resolve and check every address now."""
        return (await self.checked_addresses(url, resolver))[0]

    async def checked_addresses(self, url: str, resolver: AbstractResolver | None = None
                                ) -> tuple[UpstreamURL, list[str]]:
        """`url` parsed, and the addresses a tool may connect to for it (every one checked)."""
        target = parse_upstream_url(url)
        inner = resolver or DefaultResolver()
        try:
            answers = await self.resolve(target.host, target.port, inner)
        finally:
            if resolver is None:
                await inner.close()
        return target, [answer["host"] for answer in answers]


class GuardedConnector(aiohttp.TCPConnector):
    """A connector that asks the policy for every host it connects to, IP literals included, and
    connects only to the addresses the policy returned. (aiohttp never calls a resolver for an IP
    literal, which is how full-width digits once got past a resolver-only guard.)"""

    def __init__(self, policy: EgressPolicy, resolver: AbstractResolver, **kwargs):
        super().__init__(use_dns_cache=False, **kwargs)
        self._policy = policy
        self._names = resolver  # the name service under the policy; its owner closes it

    async def _resolve_host(self, host: str, port: int, traces=None) -> list[dict[str, Any]]:
        return await self._policy.resolve(host, port, self._names, self._family)
