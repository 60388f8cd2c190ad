"""`cbgate serve` as an operator meets it: the first start's one-time message, a busy port found at once,
JSON logs, and SIGHUP reloading the config file without stopping the server. The catalog points at a fake
OpenAI-compatible upstream, so no model is loaded."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support.catalog import write_catalog
from tests.support.fake_upstream import start_fake_upstream
from tests.support.gateway import free_port
from tests.support.wait import wait_until

SECRET = "sk-serve-test-upstream"


@pytest.fixture(scope="module")
def fake():
    fake = start_fake_upstream(require_key=SECRET)
    yield fake
    fake.stop()


def upstream_model(name: str, fake) -> dict:
    return {"name": name, "deployments": [{"kind": "openai", "base_url": fake.url, "api_key_env": "SERVE_SECRET",
                                           "name": f"fake-{name}"}]}


class Served:
    def __init__(self, data_dir: Path, *args: str, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out, self.err = data_dir.parent / f"out-{self.port}.log", data_dir.parent / f"err-{self.port}.log"
        env = {**os.environ, "SERVE_SECRET": SECRET}
        env.pop("CBGATE_DATABASE_URL", None)  # these tests are about the process, on its own SQLite
        self.proc = subprocess.Popen([sys.executable, "-m", "cbgate", "serve", "--data-dir", str(data_dir),
                                      "--port", str(self.port), *args],
                                     stdout=self.out.open("w"), stderr=self.err.open("w"), env=env)

    def wait_ready(self, timeout: float = 60) -> Served:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited {self.proc.returncode}: {self.stderr()}"
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve did not become ready: {self.stderr()}")

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def data_dir(tmp_path, fake):
    data = tmp_path / "data"
    write_catalog(data, [upstream_model("up-model", fake)], include_embedded=False)
    return data


def test_first_start_says_everything_once_and_a_restart_says_none_of_it(data_dir):
    served = Served(data_dir).wait_ready()
    try:
        out = served.stdout()
        key = next(word for word in out.split() if word.startswith("cbsk_"))
        assert out.count(key) == 2  # once alone, once in the curl line
        assert f"curl {served.url}/v1/ai/cloudbase/chat/completions -N" in out  # -N: print events as they come
        assert '"stream": true' in out and '"max_tokens": 48' in out and '"model": "up-model"' in out
        assert f"base_url = {served.url}/v1/ai/cloudbase/v1" in out and f"baseUrl = {served.url}/v1" in out
        assert f"{served.url}/console" in out and f"cbgate admin token create --data-dir {data_dir}" in out
        curl = json.loads(out.split("-d '")[1].split("'")[0])
        answer = requests.post(served.url + "/v1/ai/cloudbase/chat/completions", json=curl, stream=True, timeout=30,
                               headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200 and b"data: [DONE]" in answer.content
    finally:
        served.stop()
    again = Served(data_dir).wait_ready()
    again.stop()
    assert "cbsk_" not in again.stdout() and "console" not in again.stdout()


def test_a_busy_port_is_refused_before_anything_is_loaded(tmp_path):
    data = tmp_path / "data"  # the default catalog: the embedded model, whose file must not even be looked at
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        served = Served(data, port=port)
        assert served.proc.wait(timeout=60) == 1
    err = served.stderr()
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    assert "model file" not in err and "Traceback" not in err


def test_json_log_format_makes_every_log_line_json(data_dir):
    served = Served(data_dir, "--log-format", "json").wait_ready()
    try:
        requests.get(served.url + "/livez", timeout=10)
        wait_until(lambda: '"/livez"' in served.stderr(), "the access line of /livez")
    finally:
        served.stop()
    lines = [json.loads(line) for line in served.stderr().splitlines() if line.strip()]
    assert any(e["logger"].startswith("uvicorn") for e in lines)  # uvicorn's own lines too
    access = [e for e in lines if e["logger"] == "cbgate.access" and e["path"] == "/livez"]
    assert access and access[0]["status"] == 200 and access[0]["request_id"]


def wait_for_log(served: Served, text: str) -> None:
    def logged() -> bool:
        assert served.proc.poll() is None, served.stderr()
        return text in served.stderr()
    wait_until(logged, f"{text!r} in the log")


def test_sighup_reloads_the_catalog_and_keeps_serving(data_dir, fake):
    served = Served(data_dir).wait_ready()
    try:
        key = next(word for word in served.stdout().split() if word.startswith("cbsk_"))
        env_id = next(word for word in served.stdout().split() if word.startswith("env-"))
        write_catalog(data_dir, [upstream_model("up-model", fake), upstream_model("up-new", fake)],
                      include_embedded=False)
        served.proc.send_signal(signal.SIGHUP)
        wait_for_log(served, "config reloaded: 2 catalog models")
        subprocess.run([sys.executable, "-m", "cbgate", "model", "enable", "--env", env_id, "--group", "cloudbase",
                        "up-new", "--data-dir", str(data_dir)], check=True, capture_output=True, timeout=60)
        ask = {"model": "up-new", "messages": [{"role": "user", "content": "hi"}]}
        def answered() -> bool:  # the switch reaches the server with its next snapshot
            return requests.post(served.url + "/v1/ai/cloudbase/chat/completions", json=ask, timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}).status_code == 200
        wait_until(answered, "the enabled model to answer")

        (data_dir / "cbgate.toml").write_text("[server]\nredis_ulr = 'redis://x'\n")
        served.proc.send_signal(signal.SIGHUP)
        wait_for_log(served, "config not reloaded")
        assert "unknown key `redis_ulr`" in served.stderr()
        (data_dir / "cbgate.toml").write_text('[server]\nshutdown_timeout = "soon"\n')  # a value, not a key
        served.proc.send_signal(signal.SIGHUP)
        wait_for_log(served, "shutdown_timeout must be a number of seconds, got 'soon'")
        assert "Traceback" not in served.stderr()
        assert requests.post(served.url + "/v1/ai/cloudbase/chat/completions", json=ask, timeout=30,
                             headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert served.proc.poll() is None  # three SIGHUPs, and still serving
    finally:
        served.stop()


def test_a_bad_value_in_the_config_file_is_one_error_line_naming_its_key(data_dir):
    config = data_dir / "cbgate.toml"
    config.write_text(config.read_text() + "\n[server]\nshutdown_timeout = [1]\n")
    served = Served(data_dir)
    try:
        assert served.proc.wait(timeout=60) == 1
    finally:
        served.stop()
    assert served.stderr().splitlines() == [
        "cbgate: error: [server] shutdown_timeout must be a number of seconds, got [1]"]


def metric_total(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_metrics_add_up_every_worker(data_dir):
    token = subprocess.run([sys.executable, "-m", "cbgate", "admin", "token", "create", "--data-dir", str(data_dir)],
                           check=True, capture_output=True, text=True, timeout=60).stdout.split()[-1]
    served = Served(data_dir, "--workers", "2", "--log-format", "json").wait_ready()
    try:
        key = next(word for word in served.stdout().split() if word.startswith("cbsk_"))
        ask = {"model": "up-model", "messages": [{"role": "user", "content": "hi"}]}
        def chat(_) -> bool:  # a new connection each, several at once: the workers share them out
            return requests.post(served.url + "/v1/ai/cloudbase/chat/completions", json=ask, timeout=30,
                                 headers={"Authorization": f"Bearer {key}", "Connection": "close"}).ok

        def serving_pids() -> set[int]:
            return {json.loads(line)["pid"] for line in served.stderr().splitlines()
                    if '"cbgate.access"' in line and '"/v1/ai/cloudbase/chat/completions"' in line}

        sent = 0
        with ThreadPoolExecutor(4) as pool:  # under the default concurrency limit of 5
            while len(serving_pids()) < 2:  # until both workers have answered some (the kernel picks)
                assert sent < 800, "one worker took every connection"
                assert all(pool.map(chat, range(16)))
                sent += 16
                assert served.proc.poll() is None
                wait_until(lambda: sum(1 for line in served.stderr().splitlines()
                                       if "/chat/completions" in line) >= sent, "every access line")

        def scrape() -> float:
            text = requests.get(served.url + "/metrics", headers={"Authorization": f"Bearer {token}",
                                                                  "Connection": "close"}, timeout=10).text
            return metric_total(text, "cbgate_requests_total")

        deadline = time.monotonic() + 15
        in_a_row = 0
        while in_a_row < 8:  # whichever worker answers, once the others' counts (<= 0.5 s old) are in
            in_a_row = in_a_row + 1 if scrape() == sent else 0
            assert time.monotonic() < deadline, scrape()
    finally:
        served.stop()


def test_sighup_changes_the_admin_apis_group_listing(data_dir, fake):
    """The admin plane reads the settings through the one holder SIGHUP replaces: the catalog group it
    lists is the reloaded catalog, not the one the process started with."""
    served = Served(data_dir).wait_ready()
    try:
        key = next(word for word in served.stdout().split() if word.startswith("cbsk_"))
        env_id = next(word for word in served.stdout().split() if word.startswith("env-"))

        def catalog_models() -> list[str]:
            r = requests.get(f"{served.url}/admin/v1/envs/{env_id}/groups", timeout=30,
                             headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200, r.text
            group = next(g for g in r.json()["data"] if g["name"] == "cloudbase")
            return [m["name"] for m in group["models"]]

        assert catalog_models() == ["up-model"]
        write_catalog(data_dir, [upstream_model("up-model", fake), upstream_model("up-new", fake)],
                      include_embedded=False)
        served.proc.send_signal(signal.SIGHUP)
        wait_for_log(served, "config reloaded: 2 catalog models")
        assert catalog_models() == ["up-model", "up-new"]
    finally:
        served.stop()
