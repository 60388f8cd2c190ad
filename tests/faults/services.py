"""PostgreSQL and Redis instances of the fault tests' own, on free ports: started, stopped and restarted
at will (the machine's services on 5432 and 6379 are never touched)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
import redis

from tests.support.gateway import free_port
from tests.support.wait import wait_until


def tool(name: str) -> str:
    """Where a server binary is: PATH, /usr/local/bin, or Debian's /usr/lib/postgresql/<version>/bin.
    Missing, the test is skipped, except under CI=true, where it fails (CI must never pass by skipping)."""
    found = shutil.which(name, path="/usr/local/bin:" + os.environ.get("PATH", ""))
    if found is None:
        versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                          key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
        found = str(versions[-1]) if versions else None
    if found is None:
        message = f"{name} is not installed (scripts/setup --test installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _wait(check, what: str) -> None:
    """Until `check()` answers (a server still starting raises): the one wait helper, told to retry."""
    def answers() -> bool:
        try:
            return bool(check())
        except Exception:
            return False
    wait_until(answers, f"{what} to answer")


class OwnRedis:
    """redis-server without persistence: a restart comes back empty, as the issue's outage did."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [tool("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        _wait(client.ping, "redis-server")
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=0.5)


class OwnPostgres:
    """A throwaway cluster (initdb once), run as the `postgres` user when the tests run as root."""

    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cbgate-faults-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])

    def _run(self, command: list[str]) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + [tool(command[0])] + command[1:], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, cwd=self.dir)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def db_url(self) -> str:
        """The database the fault tests use (`fresh_database()` empties it)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/faults"

    def fresh_database(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS faults WITH (FORCE)")
            conn.execute("CREATE DATABASE faults")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(["pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"])
        _wait(lambda: psycopg.connect(self.url, connect_timeout=1).close() or True, "postgres")

    def stop(self) -> None:
        self._run(["pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def _processes(self) -> list[int]:
        """The postmaster and every process under it."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        parents = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(stat.parent.name)] = int(fields[1])
        found = [postmaster]
        for pid in found:
            found += [child for child, parent in parents.items() if parent == pid]
        return found

    def freeze(self) -> None:
        """A database that stops answering without closing anything (SIGSTOP): the hardest outage."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._processes():
            os.kill(pid, signal.SIGCONT)

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)
