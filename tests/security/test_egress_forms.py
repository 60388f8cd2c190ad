"""One egress check, tried with every spelling of an address we know of (issue 11, finding 1).

The URL is read as aiohttp/yarl read it (IDNA/UTS-46 turns full-width and ideographic digits and dots and
circled digits into an ASCII address literal, which aiohttp never hands to a resolver), then the host is
resolved and every address checked, and the connection goes only to the checked addresses.

Blocked forms are shown to be refused WITHOUT any connection: the connector's connect step is replaced by
a recorder that refuses, and must stay unused. Only loopback forms ever really connect, to a fake here.
"""
from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from cbgate.providers.netguard import EgressPolicy, EgressRefused, GuardedConnector, parse_upstream_url
from tests.support.fake_upstream import start_fake_upstream


class ScriptedNames:
    """A name service that answers from a table and never touches the network."""

    TABLE = {
        "rebind-loopback.example": ["127.0.0.1"],
        "rebind-private.example": ["10.0.0.7"],
        "rebind-metadata.example": ["169.254.169.254"],
        "rebind-v6-loopback.example": ["::1"],
        "rebind-mapped.example": ["::ffff:127.0.0.1"],
        "mixed.example": ["93.184.216.34", "192.168.0.1"],  # one bad answer is enough to refuse
        "public.example": ["93.184.216.34"],
        "public-v6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
    }

    def __init__(self):
        self.asked: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_UNSPEC):
        self.asked.append(host)
        if host not in self.TABLE:
            raise OSError(socket.EAI_NONAME, "Name or service not known")
        return [{"hostname": host, "host": a, "port": port, "proto": 0, "flags": socket.AI_NUMERICHOST,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET} for a in self.TABLE[host]]

    async def close(self):
        pass


# Refused under the default policy (nothing allowed) for where they lead. Each is a URL as a tenant sends it.
NON_PUBLIC = [
    # IPv4 loopback and the ASCII forms
    "http://127.0.0.1/v1", "http://127.1.2.3:8080/v1", "http://127.255.255.254/", "http://127.0.0.1./v1",
    # full-width, ideographic and circled digits and dots (yarl makes these ASCII; finding 1)
    "http://１２７.０.０.１:9/v1", "http://127。0。0。1/", "http://①②⑦.0.0.1/", "http://１２７．０．０．１/",
    "http://127｡0｡0｡1/", "http://１６９.２５４.１６９.２５４/latest", "http://⑩.0.0.1/", "http://１０.０.０.１/",
    "http://127．0．0．1．/",
    # other non-public IPv4
    "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/", "http://172.16.0.1/", "http://172.31.255.255/",
    "http://192.168.1.1/", "http://100.64.0.1/", "http://0.0.0.0/", "http://0.1.2.3/", "http://255.255.255.255/",
    "http://224.0.0.1/", "http://240.0.0.1/", "http://198.18.0.1/", "http://192.0.0.8/", "http://192.0.2.1/",
    # numeric IPv4 forms that are not dotted decimal (inet_aton would read them; we never guess)
    "http://2130706433/", "http://0x7f000001/", "http://0x7f.0.0.1/", "http://0177.0.0.1/", "http://0177.1/",
    "http://127.1/", "http://127.0.1/", "http://017700000001/", "http://0x7F.0x0.0x0.0x1/", "http://127.000.000.001/",
    "http://3232235777/", "http://0xa9fea9fe/", "http://２１３０７０６４３３/",
    # IPv6 loopback, mapped, compatible, NAT64, 6to4, Teredo, link-local with zones, private, multicast
    "http://[::1]/v1", "http://[0:0:0:0:0:0:0:1]:8000/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
    "http://[::FFFF:127.0.0.1]/", "http://[0::ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/",
    "http://[::ffff:10.0.0.1]/", "http://[::127.0.0.1]/", "http://[::7f00:1]/", "http://[64:ff9b::127.0.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b:1::10.0.0.1]/",
    "http://[64:ff9b:1:a00:1:0:102:304]/", "http://[64:ff9b:1::8.8.8.8]/", "http://[2002:7f00:1::]/",
    "http://[2002:a9fe:a9fe::1]/", "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/", "http://[::1%251]/", "http://[fc00::1]/", "http://[fd12:3456::1]/",
    "http://[fec0::1]/", "http://[ff02::1]/", "http://[::]/", "http://[100::1]/", "http://[2001:db8::1]/",
    # names: loopback by definition, and names a (scripted) resolver points inside
    "http://localhost/v1", "http://LOCALHOST:80/", "http://localhost./", "http://api.localhost/",
    "http://ｌｏｃａｌｈｏｓｔ/", "http://rebind-loopback.example/v1", "http://rebind-private.example/",
    "http://rebind-metadata.example/", "http://rebind-v6-loopback.example/", "http://rebind-mapped.example/",
    "http://mixed.example/", "http://REBIND-LOOPBACK.EXAMPLE./", "http://does-not-resolve.example/",
    "http://[::1]:8000/v1", "http://127.0.0.1:65535/",
]

# Refused because they cannot be used at all (syntax, scheme, port, characters, credentials).
UNUSABLE = [
    "http://[::1", "http://[127.0.0.1]/", "http://host:abc/", "http://a b/", "http://127.0.0.1\x00.example/",
    "http://127.0.0.1\t/", "http://user:pw@93.184.216.34/", "ftp://93.184.216.34/", "file:///etc/passwd",
    "gopher://127.0.0.1:70/", "http:///v1", "http://93.184.216.34:0/", "http://93.184.216.34:65536/",
    "http://127.0.0.1\r\nHost: x/", "http://\u202e1.0.0.721/", "http://exa mple.com/", "",
]
BLOCKED = NON_PUBLIC + UNUSABLE

# Public: allowed. These are only parsed and checked, never connected to.
PUBLIC = [
    ("http://93.184.216.34/v1", "93.184.216.34"), ("https://８.８.８.８/v1", "8.8.8.8"),
    ("http://[2001:4860:4860::8888]/", "2001:4860:4860::8888"), ("http://[::ffff:8.8.8.8]/", "::ffff:808:808"),
    ("http://[64:ff9b::8.8.8.8]/", "64:ff9b::808:808"), ("http://public.example/v1", "93.184.216.34"),
    ("http://PUBLIC.example./v1", "93.184.216.34"),
    ("http://public-v6.example/", "2606:2800:220:1:248:1893:25c8:1946"),
]


def check(url: str, policy: EgressPolicy | None = None, names: ScriptedNames | None = None):
    return asyncio.run((policy or EgressPolicy.parse("")).check_base_url(url, resolver=names or ScriptedNames()))


def connect_attempts(url: str, policy: EgressPolicy) -> tuple[BaseException | None, list]:
    """GET `url` through the guarded connector with its connect step replaced by a refusing recorder:
    the exception raised, and the addresses a connection was attempted to."""
    attempts: list = []

    async def run():
        connector = GuardedConnector(policy, ScriptedNames())

        async def recorder(*args, addr_infos, **kwargs):
            attempts.extend(info[4][0] for info in addr_infos)
            raise aiohttp.ClientConnectionError("the test's recorder refuses every connection")

        connector._wrap_create_connection = recorder
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            try:
                async with session.get(url, allow_redirects=False):
                    pass
            except (EgressRefused, aiohttp.ClientError, ValueError) as exc:
                return exc
        return None

    return asyncio.run(run()), attempts


def pool_attempts(url: str, policy: EgressPolicy) -> tuple[BaseException | None, list]:
    """The same through the model calls' guarded pool (http1_pool), its socket opening replaced by a refusing
    recorder: the exception raised, and the addresses a connection was attempted to."""
    from cbgate.providers.http1_pool import Pool, prepare
    attempts: list = []

    class Recording(Pool):
        async def _open(self, conn, host, port, family, tls, server_hostname):
            attempts.append(host)
            raise ConnectionRefusedError("the test's recorder refuses every connection")

    async def run():
        pool = Recording(policy, ScriptedNames())
        try:
            target = prepare("GET", url, {}, close=False)
            await pool.send(target, target.head + b"\r\n", pool.loop.time() + 5, 5, "no answer")
        except Exception as exc:  # noqa: BLE001 - whatever it is, the test looks at it and at the attempts
            return exc
        finally:
            pool.close()
        return None

    return asyncio.run(run()), attempts


def test_the_table_is_large():
    assert len(BLOCKED) + len(PUBLIC) >= 60 and len(set(BLOCKED)) == len(BLOCKED)


@pytest.mark.parametrize("url", BLOCKED, ids=ascii)
def test_blocked_forms_are_refused_by_the_check(url):
    with pytest.raises(EgressRefused):
        check(url)


@pytest.mark.parametrize("url", NON_PUBLIC, ids=ascii)
def test_blocked_forms_never_get_a_connection(url):
    error, attempts = connect_attempts(url, EgressPolicy.parse(""))
    assert error is not None
    assert attempts == []


@pytest.mark.parametrize("url", NON_PUBLIC, ids=ascii)
def test_blocked_forms_never_get_a_connection_from_the_model_pool(url):
    error, attempts = pool_attempts(url, EgressPolicy.parse(""))
    assert isinstance(error, EgressRefused)
    assert attempts == []


@pytest.mark.parametrize("url, address", PUBLIC, ids=ascii)
def test_public_forms_reach_only_the_checked_address_from_the_model_pool(url, address):
    error, attempts = pool_attempts(url, EgressPolicy.parse(""))
    assert attempts and set(attempts) == {address}
    assert "recorder refuses" in str(error)


@pytest.mark.parametrize("url, address", PUBLIC, ids=ascii)
def test_public_forms_pass_and_connect_only_to_the_checked_address(url, address):
    check(url)
    error, attempts = connect_attempts(url, EgressPolicy.parse(""))
    assert attempts and set(attempts) == {address}  # the recorder saw it: nothing left this machine
    assert "recorder refuses" in str(error)


def test_parsing_agrees_with_the_http_client():
    for url, host in [("http://１２７.０.０.１:9/v1", "127.0.0.1"), ("http://①②⑦.0.0.1/", "127.0.0.1"),
                      ("http://[::FFFF:127.0.0.1]/", "::ffff:7f00:1"), ("http://ＥＸＡＭＰＬＥ.com./", "example.com")]:
        assert parse_upstream_url(url).host == host


def test_the_operator_allow_list_matches_every_spelling():
    policy = EgressPolicy.parse("127.0.0.1, fd00::/8, internal.example")
    for url in ("http://１２７.０.０.１/v1", "http://127。0。0。1/", "http://[::ffff:127.0.0.1]/", "http://[fd00::5]/"):
        check(url, policy)
    with pytest.raises(EgressRefused):
        check("http://127.0.0.2/", policy)
    names = ScriptedNames()
    names.TABLE = {**names.TABLE, "internal.example": ["10.1.2.3"]}
    check("http://INTERNAL.example./v1", policy, names)


@pytest.fixture(scope="module")
def canary():
    fake = start_fake_upstream()
    yield fake
    fake.stop()


@pytest.mark.parametrize("host", ["１２７.０.０.１", "127。0。0。1", "①②⑦.0.0.1", "[::ffff:127.0.0.1]", "localhost"])
def test_loopback_spellings_reach_nothing_unless_allowed_then_reach_only_loopback(canary, host):
    """The reproduction of finding 1, through the gateway's own upstream client: refused, and the canary
    sees nothing; allowed by the operator, the same spelling reaches the canary (so the test can fail)."""
    from cbgate.providers.upstream_http import UpstreamClient
    url = f"http://{host}:{canary.port}/v1/models"
    canary.server.requests.clear()

    async def get(allow: str) -> int:
        client = UpstreamClient(EgressPolicy.parse(allow))
        await client.start()
        try:
            async with client.session(guarded=True).get(url) as response:
                return response.status
        finally:
            await client.close()

    with pytest.raises(EgressRefused):
        asyncio.run(get(""))
    assert canary.requests == []
    allow = "localhost" if host == "localhost" else "127.0.0.1"
    assert asyncio.run(get(allow)) == 200
    assert len(canary.requests) == 1


def test_the_reproduction_through_the_admin_api_and_chat(tmp_path, canary):
    """Finding 1 as reported: full-width and ideographic spellings of loopback reached a canary through
    both the admin API's creation check and chat calls. Now neither reaches it."""
    import requests

    from tests.support.gateway import start_in_thread
    gw = start_in_thread(tmp_path / "data", env={"CBGATE_SECRET_KEY": "operator-passphrase-egress"})
    canary.server.requests.clear()
    try:
        for i, host in enumerate(["１２７.０.０.１", "127。0。0。1", "①②⑦.0.0.1"]):
            base = f"http://{host}:{canary.port}/v1"
            group = {"name": f"inside{i}", "base_url": base, "models": ["m"]}
            checked = requests.post(f"{gw.url}/admin/v1/envs/{gw.env_id}/groups", json=group, headers=gw.headers(),
                                    timeout=30)
            assert checked.status_code in (400, 502) and "CBGATE_UPSTREAM_ALLOW" in checked.json()["message"]
            unchecked = requests.post(f"{gw.url}/admin/v1/envs/{gw.env_id}/groups", json={**group, "check": False},
                                      headers=gw.headers(), timeout=30)
            assert unchecked.status_code == 201
            reply = gw.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, group=f"inside{i}")
            assert reply.status_code == 502 and "CBGATE_UPSTREAM_ALLOW" in reply.json()["message"]
        assert canary.requests == []
    finally:
        gw.stop()
