"""The route table remembers the rows a path matched (trying every row cost ~40 us a request): what a
request gets must not change by being the second of its path, and what is remembered stays bounded."""
import asyncio

import pytest

from cbgate.errors import InvalidPath
from cbgate.http import route_table
from cbgate.http.route_table import Route, RouteTable


class Ex:
    def __init__(self, path: str, method: str = "POST"):
        self.scope = {"path": path, "method": method}
        self.error_body = None


def dispatch(table: RouteTable, path: str, method: str = "POST"):
    return asyncio.run(table.dispatch(Ex(path, method)))


def test_a_handler_that_changes_its_params_does_not_change_the_next_request_of_the_same_path():
    seen = []

    async def handler(ex, params):
        seen.append(dict(params))
        params["group"] = "changed"
        params["extra"] = 1

    table = RouteTable([Route("/v1/ai/{group}/chat/completions", {"POST": handler})])
    for _ in range(3):
        dispatch(table, "/v1/ai/team/chat/completions")
    assert seen == [{"group": "team"}] * 3


def test_remembered_paths_stay_bounded_and_each_still_answers(monkeypatch):
    monkeypatch.setattr(route_table, "MATCH_CACHE_SIZE", 16)
    calls = []

    async def handler(ex, params):
        calls.append(params["agent"])

    table = RouteTable([Route("/v1/aibot/bots/{agent}/send-message", {"POST": handler})])
    for i in range(100):
        dispatch(table, f"/v1/aibot/bots/a{i}/send-message")
        with pytest.raises(InvalidPath):
            dispatch(table, f"/no/such/{i}")
        assert len(table._known) <= 16
    assert calls == [f"a{i}" for i in range(100)]


def test_a_row_added_later_serves_a_path_that_was_a_404():
    async def handler(ex, params):
        ex.served = True

    table = RouteTable([])
    with pytest.raises(InvalidPath):
        dispatch(table, "/v1/cloudrun/svc/messages")
    table.add(Route("/v1/cloudrun/{service}/messages", {"POST": handler}))
    ex = Ex("/v1/cloudrun/svc/messages")
    asyncio.run(table.dispatch(ex))
    assert ex.served


def test_a_long_path_is_matched_but_not_remembered():
    async def handler(ex, params):
        ex.rest = params["rest"]

    table = RouteTable([Route("/v1/aibot/bots/{agent}/{rest*}", {"POST": handler})])
    path = "/v1/aibot/bots/a/" + "/".join(["x"] * 400)
    ex = Ex(path)
    asyncio.run(table.dispatch(ex))
    assert ex.rest == tuple(["x"] * 400)
    assert path not in table._known
