"""An ASGI app served in a thread by uvicorn with the gateway's server protocol, for tests that speak raw
HTTP to it (the server protocol's own, the connection edges')."""
from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Iterator

import uvicorn

from cbgate.http.server_protocol import GatewayProtocol
from tests.support.gateway import free_port
from tests.support.wait import wait_until


@contextlib.contextmanager
def serve_asgi(app, **config) -> Iterator[int]:
    """Serve `app` on a free loopback port (yielded) until the block ends; `config` goes to uvicorn.Config."""
    port = free_port()
    options = {"lifespan": "off", "log_level": "warning", "proxy_headers": False, **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=GatewayProtocol, **options))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the server to start")
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)
