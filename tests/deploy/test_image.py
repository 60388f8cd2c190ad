"""The container image for real, with podman on this machine (opt-in: CBGATE_TEST_IMAGE=1, since a first build
compiles llama.cpp; see the README's Deployment section for the measured time):

- deploy/build-image builds the base (Debian minbase plus python3) and deploy/Dockerfile on it, and reports
  the build time and the image's size;
- the image runs as the Kubernetes manifest runs it (non-root, read-only root, no capabilities) and keeps none
  of the build machine's package settings;
- the first start prints the key, the embedded default model answers a chat, SIGTERM stops it cleanly and a
  restart on the same volume keeps the key and prints no second one;
- on a CPU that lists AMX and faults on it, the engine runs without its AMX variant;
- three replicas of the image behind nginx, on PostgreSQL and Redis, hold a limit exactly, and a killed one
  fails only its own requests.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
import requests
import yaml

from cbgate.config import DEFAULT_MODEL
from tests.deploy.containers import IMAGE, ROOT, WORK, Container, ContainerReplica, podman, unique
from tests.deploy.test_topology import MODEL, ClientLoop, chat, new_env_key
from tests.deploy.topology import Nginx
from tests.support.catalog import write_catalog
from tests.support.gateway import free_port, make_admin
from tests.support.wait import wait_until

pytestmark = pytest.mark.image
KEY = re.compile(r"^\s+(cbsk_\S+)$", re.M)
PROBES = ("/readyz", "/livez")  # what deploy/kubernetes/deployment.yaml probes


@pytest.fixture(scope="module")
def image(request):
    if os.environ.get("CBGATE_TEST_IMAGE") != "1":
        pytest.skip("builds the container image (minutes; a first build compiles llama.cpp): CBGATE_TEST_IMAGE=1")
    built = subprocess.run([str(ROOT / "deploy" / "build-image"), "--install"], capture_output=True, text=True,
                           timeout=3 * 3600)
    assert built.returncode == 0, built.stderr[-4000:]
    report = built.stdout.strip().splitlines()[-1]
    request.config.pluginmanager.get_plugin("terminalreporter").write_line(f"\ndeploy/build-image: {report}")
    return IMAGE


def ready(url: str) -> bool:
    try:
        return requests.get(url + "/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def ask(url: str, key: str) -> requests.Response:
    return requests.post(url + "/v1/ai/cloudbase/chat/completions", timeout=120,
                         headers={"Authorization": f"Bearer {key}"},
                         json={"model": DEFAULT_MODEL, "max_tokens": 24, "temperature": 0,
                               "messages": [{"role": "user", "content": "What is 2+2?"}]})


def serving(image: str, volume: str, port: int, *extra: str) -> Container:
    container = Container([*extra, "-v", f"{volume}:/var/lib/cbgate", image,
                           "serve", "--host", "127.0.0.1", "--port", str(port)])
    container.start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: ready(url) or not container.running(), "the container to be ready", timeout=300,
               interval=0.5)
    assert container.running(), container.logs()[-4000:]
    return container


def test_the_image_runs_non_root_and_keeps_no_build_settings(image):
    probe = ("id -u; test -w /var/lib/cbgate && echo data-writable; "
             "ls /etc/pip.conf /opt/pypi /opt/wheels /etc/apt/sources.list 2>/dev/null; "
             "cat /etc/apt/sources.list.d/* 2>/dev/null; echo end")
    out = podman("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", probe).stdout.split()
    assert out[:2] == ["10001", "data-writable"], out
    assert out[2:] == ["end"], f"build-time settings left in the image: {out[2:]}"


def test_the_manifests_name_this_image_and_probe_what_it_serves(image):
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text()))
    pod = next(d for d in docs if d and d.get("kind") == "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # `docker build -t cbgate` (the README's command) and podman's localhost/cbgate both tag cbgate:latest.
    assert container["image"] == IMAGE.removeprefix("localhost/")
    config = podman("image", "inspect", "--format", "{{json .Config.ExposedPorts}} {{.Config.User}}", image)
    assert "8080/tcp" in config.stdout and "10001" in config.stdout
    assert container["ports"][0]["containerPort"] == 8080 and container["args"][-1] == "8080"
    assert pod["securityContext"]["runAsUser"] == 10001
    probes = {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probes == set(PROBES), "the image test checks /readyz and /livez: keep PROBES in step"


def test_first_start_prints_the_key_and_a_restart_on_the_same_volume_keeps_it(image):
    volume, port = unique("cbgate-data"), free_port()
    url = f"http://127.0.0.1:{port}"
    podman("volume", "create", volume)
    first = second = None
    try:
        first = serving(image, volume, port)
        keys = KEY.findall(first.logs())
        assert len(keys) == 1, first.logs()[-4000:]
        for path in PROBES:
            assert requests.get(url + path, timeout=5).status_code == 200, path
        answer = ask(url, keys[0])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["choices"][0]["message"]["content"].strip() and body["usage"]["completion_tokens"] > 0, body
        # SIGTERM: the gateway drains and exits by itself, well before podman's own kill.
        assert first.signal(signal.SIGTERM) in (0, 128 + signal.SIGTERM), first.logs()[-3000:]
        assert "Traceback" not in first.logs(), first.logs()[-3000:]

        second = serving(image, volume, port)
        assert not KEY.findall(second.logs()), "a restart on the same volume printed a second key"
        assert "first server API key" not in second.logs()
        again = ask(url, keys[0])
        assert again.status_code == 200, again.text
    finally:
        for container in (first, second):
            if container:
                container.remove()
        podman("volume", "rm", "--force", volume, check=False)


def test_a_cpu_that_lists_amx_and_faults_on_it_gets_the_engine_without_it(image, tmp_path):
    """/proc/cpuinfo says amx_tile here (this machine's CPU runs no AMX, so the probe fails as on such a VM);
    the entrypoint's probe must steer the engine to /opt/llama/no-amx, and the model must still answer."""
    cpuinfo = tmp_path / "cpuinfo"
    lines = open("/proc/cpuinfo").read().splitlines()
    cpuinfo.write_text("\n".join(line + " amx_tile amx_int8" if line.startswith("flags") else line
                                 for line in lines) + "\n")
    if podman("run", "--rm", "--network", "none", "--entrypoint", "/opt/llama/amx-probe", image,
              check=False).returncode == 0:
        pytest.skip("this CPU runs AMX: the probe passes, so the fallback cannot be shown here")
    volume, port = unique("cbgate-amx"), free_port()
    podman("volume", "create", volume)
    served = None
    try:
        served = serving(image, volume, port, "-v", f"{cpuinfo}:/proc/cpuinfo:ro")
        assert "runs without its AMX variant" in served.logs(), served.logs()[-3000:]
        # The engine that runs is the no-amx copy (its directory holds every CPU variant but the AMX one).
        commands = served.exec("sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
        assert "/opt/llama/no-amx/llama-server" in commands, commands
        assert "sapphirerapids" not in served.exec("ls", "/opt/llama/no-amx")
        answer = ask(f"http://127.0.0.1:{port}", KEY.findall(served.logs())[0])
        assert answer.status_code == 200, answer.text
    finally:
        if served:
            served.remove()
        podman("volume", "rm", "--force", volume, check=False)


@pytest.fixture(scope="module")
def container_topology(image, tmp_path_factory):
    """deploy/compose.yaml's topology by hand: three containers of the image behind nginx (deploy/nginx), on a
    PostgreSQL and a Redis of the test's own (on free ports), over a fake OpenAI-compatible upstream."""
    from tests.faults.services import OwnPostgres, OwnRedis
    work = tmp_path_factory.mktemp("image-topology")
    pg, rd = OwnPostgres(), OwnRedis(work)
    pg.start()
    rd.start()
    port = free_port()
    upstream = subprocess.Popen([sys.executable, "-m", "tests.support.fake_upstream", "--port", str(port),
                                 "--events", "10", "--delay-ms", "50"], stdout=subprocess.PIPE, text=True)
    assert "listening" in upstream.stdout.readline()
    data_dir = work / "data"
    config = write_catalog(data_dir, [{"name": MODEL, "deployments": [{
        "kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "api_key_env": "UPSTREAM_SECRET",
        "name": "fake-openai"}]}], include_embedded=False)
    env = {"CBGATE_DATABASE_URL": pg.url, "CBGATE_REDIS_URL": rd.url, "CBGATE_REDIS_PREFIX": "cbgate",
           "UPSTREAM_SECRET": "sk-upstream", "CBGATE_SECRET_KEY": "one-key-for-every-replica"}
    admin = make_admin(data_dir, {"CBGATE_DATA_DIR": str(data_dir), **env})
    replicas = [ContainerReplica(free_port(), work / f"replica-{i}.log", env, config) for i in range(3)]
    nginx = Nginx(work, replicas)
    try:
        for r in replicas:
            r.start()
        for r in replicas:
            r.wait_ready(timeout=180)
        nginx.start()
        yield admin, nginx, replicas
    finally:
        nginx.stop()
        for r in replicas:
            r.remove()
        upstream.terminate()
        upstream.wait(10)
        admin.store.close()
        rd.stop()
        pg.stop()


def test_limits_hold_exactly_across_three_containers(container_topology):
    admin, nginx, replicas = container_topology
    key = new_env_key(admin, replicas, "team-limited", rpm=12)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(lambda i: chat(nginx.url, key, stream=i % 2 == 0), range(30)))
    assert outcomes.count("ok") == 12, outcomes
    assert set(outcomes) == {"ok", "429 EXCEED_RATELIMIT"}, outcomes
    served = {r.port for r in replicas if "POST /v1/ai" in r.log.read_text()}
    assert len(served) >= 2, "nginx sent every request to one container"


def test_a_killed_container_fails_only_its_own_requests(container_topology):
    import time
    admin, nginx, replicas = container_topology
    key = new_env_key(admin, replicas, "team-kill")
    victim = replicas[1]
    try:
        with ClientLoop(nginx.url, key, clients=6) as loop:
            loop.wait_for(12)
            victim.stop(signal.SIGKILL)
            dead_at = time.monotonic()  # `podman run` returned: the container and its sockets are gone
            loop.wait_for(60)
    finally:
        victim.start()
        victim.wait_ready(timeout=180)
    failed = [(started - dead_at, outcome) for started, _, outcome in loop.results if outcome != "ok"]
    assert all(started < 0 for started, _ in failed), failed
    assert len(failed) <= 6, failed
    assert sum(outcome == "ok" for started, _, outcome in loop.results if started > dead_at) >= 60
