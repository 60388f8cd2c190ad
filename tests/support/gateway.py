"""Run a real cbgate server for a test: in a thread of this process (with fakes injected), or as the
`cbgate serve` command in a subprocess (the real embedded model)."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import uvicorn

from cbgate.config import load_settings
from cbgate.core.admin import Admin
from cbgate.http.app import App
from cbgate.http.server_protocol import GatewayProtocol
from cbgate.store.db import Store
from tests.support.catalog import write_catalog
from tests.support.fake_engine import FakeEngine
from tests.support.postgres import store_env_for_tests
from tests.support.wait import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Gateway:
    url: str
    data_dir: Path
    env_id: str
    key: str
    admin: Admin
    stop: callable = field(repr=False, default=None)
    app: App | None = field(repr=False, default=None)  # in-process gateways: state a test can wait on
    engine: FakeEngine | None = None  # the embedded model's fake engine (None when a test replaced it)

    def chat_url(self, group: str = "cloudbase") -> str:
        return f"{self.url}/v1/ai/{group}/chat/completions"

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def chat(self, body: dict, key: str | None = None, group: str = "cloudbase", **kwargs) -> requests.Response:
        return requests.post(self.chat_url(group), json=body, headers=self.headers(key), timeout=60, **kwargs)

    def wait_for_snapshot(self) -> int:
        """Until the gateway serves every change made in the store so far (keys, limits, groups...)."""
        target = self.admin.store.revision()
        wait_until(lambda: self.app.directory.snapshot.revision >= target, f"the gateway to load store revision {target}")
        return target

    def admitted(self, env_id: str | None = None) -> int:
        """Chat requests of the env (the gateway's own by default) that passed admission so far."""
        return self.app.metrics.admissions.get((env_id or self.env_id,), 0)

    def wait_admitted(self, count: int, env_id: str | None = None) -> None:
        wait_until(lambda: self.admitted(env_id) >= count, f"{count} requests to be admitted")


def make_admin(data_dir: Path, env: dict[str, str] | None = None) -> Admin:
    env = {**store_env_for_tests(), **(os.environ if env is None else env)}
    settings = load_settings(str(data_dir), env=env)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_url)
    store.migrate()
    return Admin(store, settings)


def start_in_thread(data_dir: Path, env: dict[str, str] | None = None, overrides=None,
                    engine: dict | None = None) -> Gateway:
    """The gateway app in a uvicorn server on a thread. The embedded model runs on the fake engine
    (`gateway.engine` steers it); `engine` sets its deployment options (e.g. {"parallel": 1}) when the
    data dir has no catalog yet, `overrides` replaces deployments by name."""
    fake = FakeEngine(data_dir.parent / f"{data_dir.name}-engine")
    if not (data_dir / "cbgate.toml").exists():
        write_catalog(data_dir, [], engine=engine)
    env = {"CBGATE_DATA_DIR": str(data_dir), **store_env_for_tests(), **fake.env, **(env or {})}
    admin = make_admin(data_dir, env)
    env_id = admin.create_env()
    _, key = admin.create_key(env_id)
    settings = load_settings(str(data_dir), env=env)
    port = free_port()
    app = App(settings, overrides or {})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", http=GatewayProtocol, lifespan="on",
                                           proxy_headers=False))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)

    def stop():
        server.should_exit = True
        thread.join(timeout=30)
        admin.store.close()

    replaced = "embedded-gemma" in (overrides or {})
    return Gateway(f"http://127.0.0.1:{port}", data_dir, env_id, key, admin, stop, app, None if replaced else fake)


@dataclass
class ServeProcess:
    """`cbgate serve` as a user runs it."""
    proc: subprocess.Popen
    url: str
    output: Path

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def metric(self, operator_token: str, name: str, labels: str = "") -> float:
        """One sample of its /metrics (0 when absent), e.g. `cbgate_tenant_snapshot_revision`."""
        text = requests.get(self.url + "/metrics", headers={"Authorization": f"Bearer {operator_token}"},
                            timeout=10).text
        series = f"{name}{{{labels}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


def start_serve(data_dir: Path, env: dict[str, str] | None = None, timeout: float = 120) -> ServeProcess:
    port = free_port()
    output = data_dir.parent / f"serve-{port}.log"
    full_env = {**os.environ, "CBGATE_DATA_DIR": str(data_dir), **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "cbgate", "serve", "--port", str(port)],
                            stdout=output.open("w"), stderr=subprocess.STDOUT, env=full_env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cbgate serve exited with {proc.returncode}:\n{output.read_text()}")
        try:
            if requests.get(url + "/healthz", timeout=1).ok:
                return ServeProcess(proc, url, output)
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"cbgate serve did not come up:\n{output.read_text()}")
