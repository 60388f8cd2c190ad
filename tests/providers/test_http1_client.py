"""The gateway's HTTP/1.1 upstream client, against a raw TCP upstream: every answer that is not well-formed
HTTP (garbage, cut heads and bodies, bad chunking, bodies that do not decode) is the upstream's failure,
AI_MODEL_REQUEST_FAILED, on the JSON and the streaming path alike; well-formed framings are read; and
connections are kept alive and reused (or, for the engine's client, never)."""
from __future__ import annotations

import asyncio
import gzip
import zlib

import pytest

from cbgate.errors import ModelRequestFailed, ModelRequestTimeout
from cbgate.protocol.chat_request import parse_chat_request
from cbgate.protocol.chat_response import ChunkFactory
from cbgate.providers.base import ModelCall, StreamOutcome
from cbgate.providers.netguard import EgressPolicy
from cbgate.providers.openai_compat import OpenAICompatAdapter
from cbgate.providers.token_estimate import TokenEstimator
from cbgate.providers.upstream_http import RetryPolicy, Timeouts, UpstreamClient
from tests.support.raw_upstream import OK_JSON, RawReply, RawUpstream, http_reply

QUICK = Timeouts(connect=2, first_byte=2, idle=2, total=5)
SSE_WORDS = b"".join(b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"t%d "},"finish_reason":null}]}\n\n'
                    % i for i in range(3))
SSE = SSE_WORDS + b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


@pytest.fixture(scope="module")
def raw():
    server = RawUpstream().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh(raw):
    raw.replies.clear()
    raw.heads.clear()
    raw.connections = 0
    raw.default = http_reply()


def call() -> ModelCall:
    return ModelCall(parse_chat_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
                     ChunkFactory("m"), "rid")


async def _ask(url: str, stream: bool, times: int, keepalive: float | None, api_key: str = "k") -> list:
    client = UpstreamClient(EgressPolicy.parse(None), RetryPolicy(attempts=1), keepalive=keepalive)
    await client.start()
    adapter = OpenAICompatAdapter("raw", base_url=url, api_key=api_key, client=client,
                                  estimator=TokenEstimator(), timeouts=QUICK)
    answers = []
    try:
        for _ in range(times):
            if stream:
                answers.append([chunk async for batch in adapter.stream(call(), StreamOutcome()) for chunk in batch])
            else:
                answers.append((await adapter.complete(call())).body)
    finally:
        await client.close()
    return answers


def ask(raw: RawUpstream, stream: bool = False, times: int = 1, keepalive: float | None = 30.0, **kw) -> list:
    return asyncio.run(_ask(raw.url, stream, times, keepalive, **kw))


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
GARBAGE = {
    "not HTTP": RawReply(b"garbage garbage\r\n\r\n", close=True),
    "closed at once": RawReply(b"", close=True),
    "reset at once": RawReply(b"", reset=True),
    "head cut short": RawReply(b"HTTP/1.1 200 OK\r\nContent-Le", close=True),
    "body shorter than its length": RawReply(JSON_HEAD + b"Content-Length: 100\r\n\r\n{\"choices\"", close=True),
    "a chunk size that is not hex": RawReply(JSON_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
    "chunks cut off by a reset": RawReply(SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"5\r\ndata:", reset=True),
    "gzip that is not gzip": RawReply(JSON_HEAD + b"Content-Encoding: gzip\r\nContent-Length: 7\r\n\r\nnotgzip"),
    "an encoding nobody asked for": RawReply(JSON_HEAD + b"Content-Encoding: br\r\nContent-Length: 2\r\n\r\n{}"),
    "switching protocols": RawReply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n"),
    "a status of four digits": RawReply(b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\n{}"),
    "a NUL in a header": RawReply(b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\n{}"),
    "two lengths that differ": RawReply(JSON_HEAD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
    "an SSE body that is JSON garbage": RawReply(SSE_HEAD + b"Content-Length: 12\r\n\r\ndata: {nope\n\n"),
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("name", GARBAGE)
def test_garbage_is_the_upstreams_failure(raw, name, stream):
    raw.script(GARBAGE[name])
    with pytest.raises(ModelRequestFailed) as caught:
        ask(raw, stream)
    assert caught.value.code == "AI_MODEL_REQUEST_FAILED" and caught.value.status in (502, 504)


def contents(answer: list) -> str:
    text = ""
    for chunk in answer:
        if isinstance(chunk, bytes):
            import orjson
            chunk = orjson.loads(chunk)
        text += "".join(c["delta"].get("content") or "" for c in chunk["choices"])
    return text


@pytest.mark.parametrize("framing", ["length", "chunked", "until close", "interim 100", "gzip", "deflate"])
def test_well_formed_framings_are_read(raw, framing):
    body = OK_JSON
    replies = {
        "length": http_reply(body),
        "chunked": RawReply(JSON_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body[:10], body[10:])),
        "until close": RawReply(JSON_HEAD + b"\r\n" + body, close=True),
        "interim 100": RawReply(b"HTTP/1.1 100 Continue\r\n\r\n" + http_reply(body).data),
        "gzip": http_reply(gzip.compress(body), headers="Content-Type: application/json\r\nContent-Encoding: gzip\r\n"),
        "deflate": http_reply(zlib.compress(body), headers="Content-Type: application/json\r\nContent-Encoding: deflate\r\n"),
    }
    raw.script(replies[framing])
    answer = ask(raw)[0]
    assert answer["choices"][0]["message"]["content"] == "ok"


def test_a_chunked_stream_split_anywhere_is_read_whole(raw):
    raw.script(RawReply(SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(*[SSE[i:i + 7] for i in range(0, len(SSE), 7)])))
    assert contents(ask(raw, stream=True)[0]) == "t0 t1 t2 "


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_connections_are_kept_alive_and_reused(raw, stream):
    raw.default = (RawReply(SSE_HEAD + b"Content-Length: %d\r\n\r\n" % len(SSE) + SSE) if stream else http_reply())
    answers = ask(raw, stream, times=5)
    assert len(answers) == 5 and raw.connections == 1
    assert all(b"\r\nConnection: close" not in head for head in raw.heads)


def test_the_engines_client_opens_a_connection_per_request_and_says_so(raw):
    ask(raw, times=3, keepalive=None)
    assert raw.connections == 3
    assert all(b"\r\nConnection: close\r\n" in head for head in raw.heads)


def test_an_answer_that_closes_its_connection_is_not_reused(raw):
    raw.script(http_reply(headers="Content-Type: application/json\r\nConnection: close\r\n", close=True))
    assert len(ask(raw, times=2)) == 2 and raw.connections == 2


def test_the_request_says_what_the_upstream_needs(raw):
    ask(raw)
    head = raw.heads[0].decode()
    assert head.startswith("POST /v1/chat/completions HTTP/1.1\r\n")
    assert f"\r\nHost: 127.0.0.1:{raw.port}\r\n" in head and "\r\nAuthorization: Bearer k\r\n" in head
    assert "\r\nContent-Length: " in head and "Accept-Encoding: gzip, deflate" in head


def test_a_secret_with_a_line_break_is_never_sent(raw):
    with pytest.raises(ModelRequestFailed, match="line break"):
        ask(raw, api_key="k\r\nX-Injected: 1")
    assert raw.heads == []


def self_signed() -> tuple[bytes, bytes]:
    """A certificate for 127.0.0.1 signed by itself, and its key (PEM)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cbgate test upstream")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_https_upstreams_are_verified(tmp_path):
    """An unknown certificate is refused (nothing is answered); the same upstream trusted by the client's
    context is reached over TLS and its connection reused."""
    import ssl
    cert, key = self_signed()
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = RawUpstream(tls=served).start()
    try:
        with pytest.raises(ModelRequestFailed, match="could not be reached.*CERTIFICATE_VERIFY_FAILED"):
            ask(server)
        assert server.heads == []

        async def trusted():
            tls = ssl.create_default_context(cadata=cert.decode())
            client = UpstreamClient(EgressPolicy.parse(None), RetryPolicy(attempts=1), tls=tls)
            await client.start()
            adapter = OpenAICompatAdapter("tls", base_url=server.url, api_key="k", client=client,
                                          estimator=TokenEstimator(), timeouts=QUICK)
            try:
                return [(await adapter.complete(call())).body for _ in range(2)]
            finally:
                await client.close()
        assert len(asyncio.run(trusted())) == 2
        assert len(server.heads) == 2 and server.connections == 1  # one TLS connection, reused
    finally:
        server.stop()


def test_an_upstream_closing_kept_alive_connections_silently_costs_no_request(raw):
    """The upstream closes each connection after its answer without saying so (no Connection: close): a
    pooled connection found closed, whether before the request or as it is sent, is never a failed call."""
    raw.default = http_reply(close=True)

    async def run():
        client = UpstreamClient(EgressPolicy.parse(None))  # the default retry policy, as model calls have
        await client.start()
        adapter = OpenAICompatAdapter("raw", base_url=raw.url, api_key="k", client=client,
                                      estimator=TokenEstimator(), timeouts=QUICK)
        try:
            return [(await adapter.complete(call())).body for _ in range(5)]
        finally:
            await client.close()
    answers = asyncio.run(run())
    assert [a["choices"][0]["message"]["content"] for a in answers] == ["ok"] * 5
    assert len(raw.heads) >= 5 and raw.connections == len(raw.heads)


async def _complete_within(url: str, timeouts: Timeouts) -> float:
    client = UpstreamClient(EgressPolicy.parse(None), RetryPolicy(attempts=1))
    await client.start()
    adapter = OpenAICompatAdapter("raw", base_url=url, api_key="k", client=client, estimator=TokenEstimator(),
                                  timeouts=timeouts)
    started = asyncio.get_running_loop().time()
    try:
        await adapter.complete(call())
    finally:
        await client.close()
    return asyncio.get_running_loop().time() - started


@pytest.mark.parametrize("status", ["200 OK", "503 Service Unavailable"])
def test_the_total_timeout_ends_a_body_that_stalls_after_its_head(raw, status):
    """The head came in time, the body never ends: the call's total time bounds the body's reading too (a refusal's
    error text as well), and says so as the 504 of a call that ran out of time."""
    raw.default = RawReply(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                           .encode() + b'{"choices"')
    with pytest.raises(ModelRequestTimeout, match=r"^upstream raw did not answer within 0\.5s$"):
        asyncio.run(_complete_within(raw.url, Timeouts(connect=2, first_byte=2, idle=2, total=0.5)))


async def _batches(url: str) -> tuple[list, BaseException | None]:
    """The adapter's stream as it yields it (a batch per read), and the failure that ended it, if any."""
    client = UpstreamClient(EgressPolicy.parse(None), RetryPolicy(attempts=1), keepalive=30.0)
    await client.start()
    adapter = OpenAICompatAdapter("raw", base_url=url, api_key="k", client=client, estimator=TokenEstimator(),
                                  timeouts=QUICK)
    batches = []
    try:
        async for batch in adapter.stream(call(), StreamOutcome()):
            batches.append(batch)
    except ModelRequestFailed as exc:
        return batches, exc
    finally:
        await client.close()
    return batches, None


def test_the_events_of_one_read_come_as_one_batch(raw):
    raw.script(RawReply(SSE_HEAD + b"Content-Length: %d\r\n\r\n" % len(SSE) + SSE))  # one write, one read
    batches, failure = asyncio.run(_batches(raw.url))
    assert failure is None
    assert [len(b) for b in batches] == [4]  # three words and the finishing chunk: one step down the pipeline
    assert contents(batches[0]) == "t0 t1 t2 "


def test_a_broken_event_ends_the_stream_after_the_events_of_its_read_before_it(raw):
    body = SSE_WORDS + b"data: {broken\n\n"
    raw.script(RawReply(SSE_HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body))
    batches, failure = asyncio.run(_batches(raw.url))
    assert contents([chunk for batch in batches for chunk in batch]) == "t0 t1 t2 "  # they still go out
    assert isinstance(failure, ModelRequestFailed) and "malformed stream event" in failure.message
