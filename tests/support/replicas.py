"""`cbgate serve` replicas sharing a PostgreSQL database and a Redis prefix of their own, in front of the
fake upstream: what the multi-replica tests (limits, budgets) set up and tear down alike."""
from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cbgate.core.admin import Admin
from tests.support.catalog import write_catalog
from tests.support.gateway import ServeProcess, free_port, make_admin, start_serve
from tests.support.postgres import create_database, drop_database
from tests.support.redis_server import delete_prefix, require_redis, unique_prefix


@dataclass
class SharedReplicas:
    admin: Admin  # on the shared database: make envs and keys with it before start()
    data_dir: Path
    env: dict[str, str]  # each replica's environment
    replicas: list[ServeProcess] = field(default_factory=list)  # all killed at the end, replacements included

    def start(self, count: int = 3) -> list[ServeProcess]:
        self.replicas.extend(start_serve(self.data_dir, self.env) for _ in range(count))
        return self.replicas


@contextmanager
def shared_replicas(data_dir: Path, model: str, events: int, delay_ms: int, price: dict | None = None):
    """The fake upstream answers `events` pieces `delay_ms` apart; `model` is its one catalog model (priced
    by `price` when given)."""
    redis_url = require_redis()
    database = create_database()
    prefix = unique_prefix()
    port = free_port()
    upstream = subprocess.Popen([sys.executable, "-m", "tests.support.fake_upstream", "--port", str(port),
                                 "--events", str(events), "--delay-ms", str(delay_ms)], stdout=subprocess.PIPE,
                                text=True)
    assert "listening" in upstream.stdout.readline()
    write_catalog(data_dir, [{"name": model, **({"price": price} if price else {}), "deployments": [{
        "kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "api_key_env": "UPSTREAM_SECRET",
        "name": "fake-openai"}]}], include_embedded=False)
    env = {"CBGATE_DATABASE_URL": database, "CBGATE_REDIS_URL": redis_url, "CBGATE_REDIS_PREFIX": prefix,
           "UPSTREAM_SECRET": "sk-upstream"}
    shared = SharedReplicas(make_admin(data_dir, {"CBGATE_DATA_DIR": str(data_dir), **env}), data_dir, env)
    try:
        yield shared
    finally:
        for r in shared.replicas:
            r.proc.kill()
            r.proc.wait(10)
        upstream.terminate()
        upstream.wait(10)
        shared.admin.store.close()
        drop_database(database)
        delete_prefix(prefix)
