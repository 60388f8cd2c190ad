"""podman for the image tests: deploy/build-image's settings (runc, cgroupfs, no default ulimits), containers
named and removed by the test that made them, and a topology replica that is a container of the image."""
from __future__ import annotations

import os
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.topology import Replica

ROOT = Path(__file__).resolve().parents[2]
WORK = Path(os.environ.get("CBGATE_IMAGE_WORK", "/var/tmp/cbgate-image"))
IMAGE = os.environ.get("CBGATE_IMAGE", "localhost/cbgate:latest")


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "CONTAINERS_CONF": str(WORK / "containers.conf")})
    assert not check or result.returncode == 0, f"podman {' '.join(args)}: {result.stderr[-2000:]}"
    return result


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# What the Kubernetes manifest asks of the pod (deploy/kubernetes/deployment.yaml): a read-only root with
# /tmp and the data volume writable, every capability dropped, no privilege escalation.
HARDENED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


@dataclass
class Container:
    """One `podman run -d` of the image on the host network; logs and exit code read back through podman."""
    args: list[str]
    name: str = field(default_factory=lambda: unique("cbgate-test"))

    def start(self) -> None:
        podman("run", "-d", "--name", self.name, "--network", "host", *HARDENED, *self.args)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def running(self) -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def signal(self, sig: int) -> int:
        """Sends `sig` and waits for the container to exit; its exit code."""
        podman("kill", "--signal", signal.Signals(sig).name, self.name)
        return int(podman("wait", self.name, timeout=90).stdout.strip())

    def exec(self, *command: str) -> str:
        return podman("exec", self.name, *command).stdout

    def remove(self) -> None:
        podman("rm", "--force", "--time", "0", self.name, check=False)


class ContainerReplica(Replica):
    """A topology replica (tests/deploy/topology.py) that is the image on the host network: `podman run` in
    the foreground is its process, a signal goes to the container."""

    def __init__(self, port: int, log: Path, env: dict[str, str], config: Path):
        super().__init__(port, log, env)
        self.config = config
        self.name = unique(f"cbgate-replica-{port}")

    def start(self) -> None:
        options = [f"--env={name}" for name in self.env]  # values from podman's environment, not its argv
        self.proc = subprocess.Popen(
            ["podman", "run", "--rm", "--name", self.name, "--network", "host", *HARDENED, *options,
             "--env=CBGATE_CONFIG=/etc/cbgate/cbgate.toml", "-v", f"{self.config}:/etc/cbgate/cbgate.toml:ro",
             IMAGE, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log.open("a"), stderr=subprocess.STDOUT,
            env={**os.environ, **self.env, "CONTAINERS_CONF": str(WORK / "containers.conf")})

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 45) -> int:
        podman("kill", "--signal", signal.Signals(sig).name, self.name, check=False)
        return self.proc.wait(timeout)

    def remove(self) -> None:
        podman("rm", "--force", "--time", "0", self.name, check=False)
        if self.proc is not None:
            self.proc.wait(30)
