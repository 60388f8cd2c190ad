"""The gateway's own HTTP/1.1 server protocol (cbgate/http/server_protocol.py), over real sockets: what a
client sees of keep-alive, pipelining, 100-continue, HEAD, bad requests, large bodies, disconnects and
the one write a response leaves in."""
from __future__ import annotations

import asyncio
import socket
import time

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st

from cbgate.http.request_cycle import BAD_NAME, BAD_VALUE, headers_invalid
from cbgate.http.server_protocol import GatewayProtocol
from tests.support.asgi_server import serve_asgi
from tests.support.wait import wait_until

SEEN: dict = {}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/disconnect":  # registers for the client's disconnect, then waits for ever
        SEEN["cancelled"] = False
        scope["cbgate.on_disconnect"](lambda: SEEN.__setitem__("cancelled", True))
        await asyncio.Event().wait()
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/bad-header":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-evil", b"a\r\nset-cookie: x")]})
        return
    if path == "/crash":
        raise RuntimeError("the app failed")
    reply = b"%s %s %d" % (scope["method"].encode(), path.encode(), len(body))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(reply))]})
    await send({"type": "http.response.body", "body": reply})


@pytest.fixture(scope="module")
def port():
    with serve_asgi(app, log_level="critical", timeout_keep_alive=1) as port:
        yield port


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[bytes, bytes]:
    """One response off the socket: (head, body), reading a Content-Length or chunked body whole."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole head: {bytes(buffer)!r}"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    lowered = head.lower()
    if b"content-length:" in lowered:
        length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(buffer) < length:
            buffer += sock.recv(65536)
        body = bytes(buffer[:length])
        buffer[:] = buffer[length:]
        return head, body
    if b"transfer-encoding: chunked" in lowered:
        while not bytes(buffer).endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk
            buffer += chunk
        body, raw = b"", bytes(buffer)
        while True:
            size_line, _, raw = raw.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            body, raw = body + raw[:size], raw[size + 2:]
        buffer.clear()
        return head, body
    return head, b""


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def test_kept_alive_requests_and_pipelined_ones_are_answered_in_order(port):
    with connect(port) as sock:
        buffer = bytearray()
        sock.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        head, body = read_response(sock, buffer)
        assert head.startswith(b"HTTP/1.1 200 OK") and body == b"POST /a 3"
        assert b"date: " in head.lower() and b"connection: close" not in head.lower()
        sock.sendall(b"".join(b"POST /p%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (i, i, b"x" * i)
                              for i in range(5)))
        assert [read_response(sock, buffer)[1] for _ in range(5)] == [b"POST /p%d %d" % (i, i) for i in range(5)]


class RecordingTransport(asyncio.Transport):
    def __init__(self):
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data):
        self.writes.append(bytes(data))

    def is_closing(self):
        return self.closed

    def close(self):
        self.closed = True

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 1), "peername": ("127.0.0.1", 2)}.get(name, default)

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def test_a_response_leaves_in_one_write_with_its_head():
    """Head and body in one socket write (uvicorn's protocol made two): a JSON answer, and a stream whose
    pieces were all sent in one turn of the loop."""
    async def main():
        config = uvicorn.Config(app, http=GatewayProtocol, lifespan="off", proxy_headers=False)
        state = uvicorn.server.ServerState()
        proto = GatewayProtocol(config, state, {}, asyncio.get_running_loop())
        transport = RecordingTransport()
        proto.connection_made(transport)
        for path in (b"/json", b"/stream"):
            transport.writes.clear()
            proto.data_received(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            await asyncio.wait_for(asyncio.gather(*state.tasks), 30)
            assert len(transport.writes) == 1, transport.writes
            assert transport.writes[0].startswith(b"HTTP/1.1 200 OK")
            assert transport.writes[0].endswith(b"GET /json 0" if path == b"/json" else b"three\r\n0\r\n\r\n")
        proto.connection_lost(None)
    asyncio.run(main())


def test_a_stream_is_chunked_and_whole(port):
    with connect(port) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_response(sock, bytearray())
        assert b"transfer-encoding: chunked" in head.lower() and body == b"one two three"


def test_head_and_204_have_no_body_and_the_connection_goes_on(port):
    with connect(port) as sock:
        buffer = bytearray()
        sock.sendall(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /empty HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        while buffer.count(b"HTTP/1.1") < 3 or not buffer.endswith(b"GET /after 0"):
            buffer += sock.recv(65536)
        assert buffer.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 204" in buffer
        assert b"HEAD /h" not in buffer  # the HEAD answer's Content-Length is kept, its body is not sent


def test_expect_100_continue_gets_its_interim_answer_before_the_body_is_sent(port):
    with connect(port) as sock:
        sock.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"data")
        assert read_response(sock, bytearray())[1] == b"POST /c 4"


def test_a_large_body_in_many_pieces_is_read_whole(port):
    size = 3 * 1024 * 1024
    with connect(port) as sock:
        sock.sendall(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            sock.sendall(b"y" * 65536)
        assert read_response(sock, bytearray())[1] == b"POST /big %d" % size


def test_garbage_gets_400_and_a_closed_connection(port):
    with connect(port) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = sock.recv(1024)
        assert answer.startswith(b"HTTP/1.1 400") and b"connection: close" in answer
        assert sock.recv(1024) == b""


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(port):
    with connect(port) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(sock, bytearray())
        sock.settimeout(30)
        assert sock.recv(1024) == b""  # timeout_keep_alive=1 s closed it (the 30 s would fail the test)


def test_a_busy_connection_is_not_closed_by_the_keep_alive_timeout(port):
    with connect(port) as sock:
        buffer = bytearray()
        began = time.monotonic()
        while time.monotonic() - began < 2.5:  # past two keep-alive timeouts, a request every 0.1 s
            sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock, buffer)[1] == b"GET /a 0"
            time.sleep(0.1)


def test_connection_close_and_http_1_0_end_the_connection_after_the_answer(port):
    for request in (b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"GET /a HTTP/1.0\r\n\r\n"):
        with connect(port) as sock:
            sock.sendall(request)
            head, body = read_response(sock, bytearray())
            assert body == b"GET /a 0" and b"connection: close" in head.lower()
            assert sock.recv(1024) == b""


def test_a_websocket_upgrade_is_answered_as_plain_http_and_closed(port):
    with connect(port) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        head, body = read_response(sock, bytearray())
        assert head.startswith(b"HTTP/1.1 200") and body == b"GET /ws 0"
        assert sock.recv(1024) == b""


def test_the_disconnect_callback_runs_when_the_client_leaves(port):
    with connect(port) as sock:
        sock.sendall(b"GET /disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: SEEN.get("cancelled") is False, "the app to register")
    wait_until(lambda: SEEN["cancelled"], "the disconnect callback")


def test_a_header_with_a_line_break_is_refused_and_a_crash_is_a_500(port):
    with connect(port) as sock:
        sock.sendall(b"GET /bad-header HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 500") and b"set-cookie" not in answer
    with connect(port) as sock:
        sock.sendall(b"GET /crash HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 500")


@given(st.lists(st.tuples(st.binary(max_size=6), st.binary(max_size=6)), max_size=4))
@settings(max_examples=3000, deadline=None)
def test_the_joined_header_check_refuses_exactly_what_a_check_of_each_header_refuses(headers):
    each = any(BAD_NAME.search(name) or BAD_VALUE.search(value) for name, value in headers)
    assert headers_invalid(headers) == bool(each)
