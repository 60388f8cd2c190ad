"""The deploy/ topology as processes on this machine: `cbgate serve` replicas on fixed loopback ports, sharing
PostgreSQL and Redis, behind a real nginx that runs deploy/nginx/nginx.conf with its upstreams pointed at
them. Everything started here is stopped here."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support.gateway import free_port
from tests.support.wait import wait_until

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class Replica:
    port: int
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "cbgate", "serve", "--port", str(self.port)],
                                     stdout=self.log.open("a"), stderr=subprocess.STDOUT, env=self.env)

    def alive(self) -> None:
        assert self.proc.poll() is None, f"replica on {self.port} exited:\n{self.log.read_text()[-3000:]}"

    def knows(self, key: str) -> bool:
        self.alive()
        try:
            return requests.get(self.url + "/admin/v1/me", headers={"Authorization": f"Bearer {key}"},
                                timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        """/readyz where the gateway has it, else /healthz."""
        def ready():
            self.alive()
            try:
                r = requests.get(self.url + "/readyz", timeout=1)
                if r.status_code == 404:
                    r = requests.get(self.url + "/healthz", timeout=1)
                return r.status_code == 200
            except requests.RequestException:
                return False
        wait_until(ready, f"replica {self.port} to be ready", timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 45) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@dataclass
class Nginx:
    workdir: Path
    replicas: list[Replica]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self, down: frozenset[int] = frozenset()) -> str:
        """deploy/nginx/nginx.conf with loopback upstreams, a loopback listener and files in workdir; the
        replicas whose ports are in `down` are marked `down` (taken out of the balancer)."""
        text = (DEPLOY / "nginx" / "nginx.conf").read_text()
        servers = iter(self.replicas)

        def server(_) -> str:
            port = next(servers).port
            return f"server 127.0.0.1:{port}" + (" down" if port in down else "")

        text, count = re.subn(r"server gateway-\d+:8080", server, text)
        assert count == len(self.replicas), "deploy/nginx/nginx.conf no longer lists its replicas as gateway-N"
        text = text.replace("listen 8080;", f"listen 127.0.0.1:{self.port};")
        text = text.replace("/etc/nginx/cbgate-proxy.conf", str(DEPLOY / "nginx" / "cbgate-proxy.conf"))
        text = text.replace("worker_processes auto;", "worker_processes 1;")
        text = text.replace("access_log /dev/stdout;", f"access_log {self.workdir}/access.log;")
        text = text.replace("error_log /dev/stderr warn;", f"error_log {self.workdir}/error.log warn;")
        temp = "".join(f"    {name}_temp_path {self.workdir}/{name};\n"
                       for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        text = text.replace("http {\n", "http {\n" + temp, 1)
        head = f"daemon off;\npid {self.workdir}/nginx.pid;\nerror_log {self.workdir}/error.log warn;\n"
        if os.geteuid() == 0:  # else its workers drop to nobody, who cannot enter the test's private temp dir
            head += "user root;\n"
        return head + text

    def start(self) -> None:
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.config())
        check = subprocess.run([NGINX, "-t", "-p", str(self.workdir), "-c", str(conf)], capture_output=True,
                               text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([NGINX, "-p", str(self.workdir), "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=(self.workdir / "stderr.log").open("w"))
        wait_until(lambda: answers(self.url + "/healthz"), "nginx to proxy")

    def workers(self) -> set[int]:
        """The pids of the nginx master's worker processes."""
        pids = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid:
                pids.add(int(entry.name))
        return pids

    def reload(self, down: frozenset[int] = frozenset()) -> None:
        """`nginx -s reload` with the replicas on `down` ports marked down; returns once every worker that had
        the old configuration has exited, so no new request can reach a replica marked down."""
        old = self.workers()
        (self.workdir / "nginx.conf").write_text(self.config(down))
        self.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: (now := self.workers()) and not (now & old),
                   "nginx's workers to take the new configuration")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def replica_env(base: dict[str, str], data_dir: Path) -> dict[str, str]:
    return {**os.environ, "CBGATE_DATA_DIR": str(data_dir), **base}
