"""What the fault tests share: a gateway in this process in front of the fake upstream, and waits on
the state a fault changes (limits a gateway has loaded, ledger rows that landed)."""
from __future__ import annotations

from pathlib import Path

import requests

from cbgate.limits.base import estimate_cost
from cbgate.store.usage import usage_summary
from tests.support.catalog import write_catalog
from tests.support.gateway import Gateway, start_in_thread
from tests.support.wait import wait_until

MODEL = "fake-gpt"


def fake_catalog(data_dir: Path, upstream_url: str) -> None:
    write_catalog(data_dir, [{"name": MODEL, "deployments": [{
        "kind": "openai", "base_url": upstream_url, "name": "fake-openai"}]}], include_embedded=False)


def upstream_gateway(data_dir: Path, upstream_url: str, env: dict[str, str] | None = None) -> Gateway:
    fake_catalog(data_dir, upstream_url)
    return start_in_thread(data_dir, env=env)


def set_limits(gateway: Gateway, env_id: str, **limits) -> None:
    """Change an env's limits through the store and wait until the gateway serves with them."""
    gateway.admin.set_env_limits(env_id, limits)
    gateway.wait_for_snapshot()


def body(text: str = "count my tokens", max_tokens: int = 8, stream: bool = False) -> dict:
    return {"model": MODEL, "max_tokens": max_tokens, "stream": stream,
            "messages": [{"role": "user", "content": text}]}


def reservation(text: str = "count my tokens", max_tokens: int = 8) -> int:
    """What admission reserves for `body(text, max_tokens)`: the most one request may overspend by."""
    return estimate_cost([{"role": "user", "content": text}], max_tokens)


def chat(gateway: Gateway, key: str | None = None, **kw) -> requests.Response:
    return requests.post(gateway.chat_url(), json=body(**kw), headers=gateway.headers(key), timeout=30)


def ledger_total(gateway: Gateway, env_id: str) -> int:
    return usage_summary(gateway.admin.store, env_id)["total_tokens"]


def drained_total(gateway: Gateway, env_id: str, requests_expected: int) -> int:
    """The env's ledger total once it holds `requests_expected` records."""
    wait_until(lambda: usage_summary(gateway.admin.store, env_id)["requests"] >= requests_expected,
             f"{requests_expected} ledger records")
    return ledger_total(gateway, env_id)


def records_of(gateway: Gateway, ids: set[str], env_ids: list[str] | None = None) -> list:
    """The ledger rows of these request ids, once all of them landed (or what landed in 15 s)."""
    from cbgate.store.usage import recent_requests

    def rows() -> list:
        return [r for env in env_ids or [gateway.env_id]
                for r in recent_requests(gateway.admin.store, env, 100_000) if r.request_id in ids]
    def complete() -> list | None:
        found = rows()
        return found if len({r.request_id for r in found}) >= len(ids) else None
    try:
        return wait_until(complete, f"{len(ids)} ledger records", timeout=15)
    except AssertionError:
        return rows()
