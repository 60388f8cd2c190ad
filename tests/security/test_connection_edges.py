"""Connections at the edge: partial headers cannot hold a socket open forever (a header-read timeout), and
a client still sending a body too large reads the 413 instead of a connection reset (issue 11)."""
from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import orjson
import pytest

from cbgate.http.server_protocol import header_timeout
from tests.support.asgi_server import serve_asgi
from tests.support.wait import wait_until


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("CBGATE_HEADER_TIMEOUT", "0.5")
    with serve_asgi(hello) as port:
        yield port


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def test_partial_headers_and_silent_connections_are_closed(server):
    sockets = []
    for i in range(60):
        sock = socket.create_connection(("127.0.0.1", server))
        if i % 2:
            sock.sendall(b"POST /v1/ai/cloudbase/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        sock.setblocking(False)
        sockets.append(sock)
    try:
        wait_until(lambda: all(closed_by_server(s) for s in sockets), "the server to close every idle socket")
    finally:
        for sock in sockets:
            sock.close()
    with socket.create_connection(("127.0.0.1", server)) as sock:  # the server still serves
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")


@pytest.mark.timing
def test_a_slow_body_after_complete_headers_is_not_cut_by_the_header_timeout(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        time.sleep(1.0)  # past the 0.5 s header timeout, on purpose: the body has no such limit here
        sock.sendall(b"cd")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")


def test_the_header_timeout_setting_is_checked():
    assert header_timeout({}) == 10.0 and header_timeout({"CBGATE_HEADER_TIMEOUT": "2.5"}) == 2.5
    for bad in ("0", "-1", "soon", "1e9", "nan"):
        with pytest.raises(ValueError, match="CBGATE_HEADER_TIMEOUT"):
            header_timeout({"CBGATE_HEADER_TIMEOUT": bad})


@pytest.mark.parametrize("size", [20 * 1024 * 1024])
def test_a_large_body_from_urllib_reads_the_413(gateway, size):
    """urllib asks for `Connection: close`; the refusal must still reach it, not a reset."""
    request = urllib.request.Request(gateway.chat_url(), data=b"x" * size, method="POST",
                                     headers={**gateway.headers(), "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 413
    assert orjson.loads(refused.value.read())["code"] == "EXCEED_MAX_PAYLOAD_SIZE"


def test_a_large_chunked_body_from_requests_reads_the_413(gateway):
    import requests

    def chunks():
        for _ in range(320):
            yield b"x" * 65536
    reply = requests.post(gateway.chat_url(), data=chunks(), timeout=60,
                          headers={**gateway.headers(), "Content-Type": "application/json", "Connection": "close"})
    assert reply.status_code == 413 and reply.json()["code"] == "EXCEED_MAX_PAYLOAD_SIZE"


def test_the_database_and_its_wal_are_private(tmp_path):
    """cbgate.db, its -wal and -shm, and the operator key file: mode 0600 (they were 0644)."""
    from tests.cli.test_tenant_commands import cbgate
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    (data_dir / "cbgate.db").touch(mode=0o644)  # as an older version left it
    (data_dir / "cbgate.db").chmod(0o644)
    cbgate(data_dir, "env", "create", "team-a")
    cbgate(data_dir, "group", "set-key", "--env", "team-a", "hunyuan", "sk-hunyuan-perm-check")
    made = sorted(p.name for p in data_dir.iterdir() if p.name.startswith("cbgate.db") or p.name == "secret.key")
    assert "cbgate.db" in made and "secret.key" in made
    for name in made:
        assert (data_dir / name).stat().st_mode & 0o077 == 0, f"{name} is readable by others"


def test_a_new_data_directory_is_private(tmp_path):
    from cbgate.cli.common import open_admin

    class Args:
        data_dir = str(tmp_path / "fresh")
    open_admin(Args(), create=True).store.close()
    assert (tmp_path / "fresh").stat().st_mode & 0o077 == 0


def test_the_wal_of_a_running_store_is_private(tmp_path):
    from cbgate.store import envs
    from cbgate.store.db import Store
    store = Store(str(tmp_path / "cbgate.db"))
    try:
        store.migrate()
        envs.create_env(store, "team-a", {})
        wal = tmp_path / "cbgate.db-wal"
        assert wal.exists()  # open connections keep it
        for path in (tmp_path / "cbgate.db", wal):
            assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"
    finally:
        store.close()


@pytest.mark.parametrize("value", ["info", "INFO", "Warning", "debug"])
def test_the_log_level_is_read_in_any_case(monkeypatch, value):
    """`CBGATE_LOG_LEVEL=info` once stopped the server (logging wants INFO)."""
    import logging

    from cbgate.logs import setup_logging
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setenv("CBGATE_LOG_LEVEL", value)
    try:
        setup_logging("text")
        assert root.level == logging.getLevelName(value.upper())
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
