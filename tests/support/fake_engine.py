"""The gateway's engine in tests: the real supervisor, queue and adapter over `fake_llama.py` in place of
llama-server, and a handle to steer one gateway's fake and read its counts.

As a model source (`package:tests.support.fake_engine`), `assemble()` makes a GGUF file that holds only
the metadata the gateway reads (a Gemma model without a chat template).
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tempfile
from pathlib import Path

import requests

from cbgate.providers.local.gguf_meta import write_minimal

SOURCE = "package:tests.support.fake_engine"
_SERVER = Path(__file__).with_name("fake_llama.py")


def assemble() -> Path:
    path = Path(tempfile.gettempdir()) / f"cbgate-fake-gemma-{os.getuid()}.gguf"
    if not path.exists():
        write_minimal(path.with_suffix(".tmp"), {"general.architecture": "gemma3", "general.name": "fake"})
        path.with_suffix(".tmp").replace(path)
    return path


def fake_binary() -> Path:
    """An executable that runs the fake with this interpreter, as CBGATE_LLAMA_SERVER names a binary. Named for
    what it runs: checkouts side by side (git worktrees) each get their own, never the other's fake."""
    script = f'#!/bin/sh\nexec "{sys.executable}" "{_SERVER}" "$@"\n'
    digest = hashlib.sha256(script.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"cbgate-fake-llama-server-{os.getuid()}-{digest}"
    if not path.exists() or path.read_text() != script:
        path.with_suffix(".tmp").write_text(script)
        path.with_suffix(".tmp").chmod(stat.S_IRWXU)
        path.with_suffix(".tmp").replace(path)
    return path


class FakeEngine:
    """One gateway's fake engine: what it is told to do, and what it did (counts are its own)."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {"CBGATE_LLAMA_SERVER": str(fake_binary()), "CBGATE_ENGINE_FAKE_DIR": str(self.dir)}

    def script(self, **fields) -> None:
        """e.g. token_delay=0.05, reply_tokens=3, crash_after_tokens=10; None removes a field."""
        path = self.dir / "script.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(fields)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v for k, v in current.items() if v is not None}))
        tmp.replace(path)

    def stats(self) -> dict:
        port = (self.dir / "port").read_text()
        return requests.get(f"http://127.0.0.1:{port}/_fake/stats", timeout=10).json()

    def generated(self) -> int:
        return self.stats()["generated"]

    def pid(self) -> int:
        return self.stats()["pid"]
