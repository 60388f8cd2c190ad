"""The access log is written off the event loop: a log output that stops reading (a full pipe) does not
stop the answers, and every line still comes out, the last ones when the server stops."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import requests

from tests.cli.test_serve_command import SECRET, data_dir, fake  # noqa: F401  (fixtures)
from tests.support.gateway import free_port
from tests.support.wait import wait_until

REQUESTS = 1500  # JSON access lines of ~300 bytes: several times what a pipe holds (64 KiB)


def test_a_log_output_that_stops_reading_neither_stalls_answers_nor_loses_lines(data_dir):  # noqa: F811
    port = free_port()
    env = {**os.environ, "SERVE_SECRET": SECRET}
    env.pop("CBGATE_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "cbgate", "serve", "--data-dir", str(data_dir), "--port",
                             str(port), "--log-format", "json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env)
    url = f"http://127.0.0.1:{port}/livez"
    lines: list[bytes] = []
    try:
        def answers() -> bool:
            assert proc.poll() is None, "serve exited"
            try:
                return requests.get(url, timeout=1).ok
            except requests.ConnectionError:
                return False
        wait_until(answers, "the server answers", timeout=60)
        with requests.Session() as session:  # nobody reads the server's stderr meanwhile
            for _ in range(REQUESTS):
                assert session.get(url, timeout=30).status_code == 200
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        reader.start()  # the output reads again; then the server stops
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn ends by its signal
        reader.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    access = [json.loads(line) for line in lines if b'"cbgate.access"' in line]
    assert len([e for e in access if e["path"] == "/livez"]) >= REQUESTS
    assert not [line for line in lines if b"dropped" in line]
