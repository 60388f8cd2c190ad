"""A real browser enforcing CORS: a page on an origin the env allows chats with a publishable key; a page on
any other origin cannot, and cannot read the answer."""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.support.admin_plane import make_cast

FETCH_CHAT = """async ([url, key]) => {
  try {
    const resp = await fetch(url, {method: "POST", headers: {Authorization: "Bearer " + key,
      "Content-Type": "application/json"}, body: JSON.stringify({model: "gemma-3-270m",
      messages: [{role: "user", content: "from a shop page"}]})});
    return {status: resp.status, body: await resp.json()};
  } catch (err) {
    return {status: 0, body: String(err)};
  }
}"""


class ShopPage(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>shop</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def shop(gateway):
    """Two pages served from loopback (Chrome lets loopback pages reach loopback), one origin allowed."""
    cast = make_cast(gateway)
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), ShopPage) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    allowed, other = (f"http://localhost:{s.server_address[1]}" for s in servers)
    gateway.admin.set_env_origins(gateway.env_id, [allowed])
    deadline = time.monotonic() + 5
    while requests.options(gateway.chat_url(), headers={"Origin": allowed}, timeout=5).status_code != 204:
        assert time.monotonic() < deadline, "the gateway never saw the allowed origin"
        time.sleep(0.05)
    yield cast, allowed, other
    for server in servers:
        server.shutdown()


def test_allowed_origin_chats_with_a_publishable_key(page, shop):
    cast, allowed, _ = shop
    page.goto(allowed + "/")
    result = page.evaluate(FETCH_CHAT, [cast.gw.chat_url(), cast.publishable])
    assert result["status"] == 200, result
    assert result["body"]["choices"][0]["message"]["content"] == "echo: from a shop page"


def test_other_origins_cannot_use_the_key(page, shop):
    cast, _, other = shop
    page.goto(other + "/")
    result = page.evaluate(FETCH_CHAT, [cast.gw.chat_url(), cast.publishable])
    assert result["status"] == 0 and "Failed to fetch" in result["body"]
