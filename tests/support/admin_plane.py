"""A gateway with the cast of the admin plane's permission tests: an operator, the gateway's own env with a
server and a publishable key, and a second env with its own server key."""
from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from tests.support.gateway import Gateway


@dataclass
class Cast:
    gw: Gateway
    operator: str
    server: str  # the gateway env's server key (gw.key)
    publishable: str
    other_env: str
    other_server: str

    def call(self, method: str, path: str, token: str | None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.gw.url + path, headers=headers, timeout=30, **kwargs)


def wait_until_known(gw: Gateway, token: str, timeout: float = 5.0) -> None:
    """Keys made straight in the store reach the gateway's snapshot within its refresh interval."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(gw.url + "/admin/v1/me", headers={"Authorization": f"Bearer {token}"},
                        timeout=5).status_code != 401:
            return
        time.sleep(0.05)
    raise AssertionError("the gateway never saw the new token")


def make_cast(gw: Gateway) -> Cast:
    _, operator = gw.admin.create_operator_token("tests")
    _, publishable = gw.admin.create_key(gw.env_id, "publishable", name="web")
    other_env = gw.admin.create_env()  # generated: on PostgreSQL the whole session shares one database
    _, other_server = gw.admin.create_key(other_env, name="theirs")
    for token in (operator, publishable, other_server):
        wait_until_known(gw, token)
    return Cast(gw, operator, gw.key, publishable, other_env, other_server)
