"""Reading the usage ledger from tests: it is written in batches, so wait for the rows to land."""
from __future__ import annotations

import http.client
from urllib.parse import urlparse

import orjson

from cbgate.store.usage import UsageRecord, recent_requests
from tests.support.wait import wait_until


def ledger_rows(store, env_id: str, where=None) -> list[UsageRecord]:
    """The env's ledger as it is now, newest first; only rows `where` accepts."""
    return [r for r in recent_requests(store, env_id, limit=10_000) if where is None or where(r)]


def wait_for_records(store, env_id: str, count: int, where=None) -> list[UsageRecord]:
    """The env's ledger (newest first; only rows `where` accepts) once it holds at least `count`."""
    def enough() -> list[UsageRecord] | None:
        rows = ledger_rows(store, env_id, where)
        return rows if len(rows) >= count else None
    return wait_until(enough, f"{count} ledger rows of {env_id}")


class DroppedStream:
    """A streaming chat request whose client reads a few events and then drops the connection."""

    def __init__(self, url: str, key: str, body: dict):
        where = urlparse(url)
        self.conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
        self.conn.request("POST", where.path, orjson.dumps(body),
                          {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        self.response = self.conn.getresponse()
        self.request_id = self.response.getheader("x-request-id")

    def read_events(self, count: int) -> list[bytes]:
        events = []
        while len(events) < count:
            line = self.response.fp.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                events.append(line[6:].strip())
        return events

    def drop(self) -> None:
        self.conn.sock.close()
        self.response.close()
        self.conn.close()
