"""A gateway with the cast of the admin plane's permission tests: an operator, the gateway's own env with a
server and a publishable key, and a second env with its own server key."""
from __future__ import annotations

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


def make_cast(gw: Gateway) -> Cast:
    _, operator = gw.admin.create_operator_token("tests")
    _, publishable = gw.admin.create_key(gw.env_id, "publishable", name="web")
    other_env = gw.admin.create_env()  # generated: on PostgreSQL the whole session shares one database
    _, other_server = gw.admin.create_key(other_env, name="theirs")
    gw.wait_for_snapshot()
    return Cast(gw, operator, gw.key, publishable, other_env, other_server)
