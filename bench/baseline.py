"""The older commit bench/run.py measures today's head against (`--targets ...,base --base COMMIT`): a git
worktree of that commit and a venv of its own, both under bench/.run/ (git-ignored), made once and reused.

The venv gets the packages the old commit's pyproject names, at the versions the repository's .venv has
(pip freeze as constraints), so both sides run the same uvicorn, aiohttp and SQLAlchemy; the old code is put
on PYTHONPATH rather than installed. Commits that import llama_cpp at start (a4df6eb does) also need
llama-cpp-python, built here from source as a portable build (GGML_NATIVE=OFF; several minutes, once) with
pip's cache bypassed, since a cached wheel may be a build for another CPU."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RUN = BENCH / ".run"
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
# Packages of the old commit's list that the benchmark never uses: the model weights (several hundred MB)
# and llama-cpp-python, which is built on its own below.
SKIP = re.compile(r"^(gemma3-|llama-cpp-python)", re.I)


@dataclass
class Baseline:
    commit: str  # as given (short hash)
    src: Path  # put on PYTHONPATH
    python: Path

    def cli(self) -> list[str]:
        return [str(self.python), "-m", "cbgate"]

    def env(self, base: dict) -> dict:
        return dict(base, PYTHONPATH=str(self.src))


def _run(argv: list[str], **kw) -> None:
    print("  $", " ".join(argv), flush=True)
    subprocess.run(argv, check=True, **kw)


def _worktree(commit: str) -> Path:
    tree = RUN / commit
    if not (tree / "src" / "cbgate").is_dir():
        RUN.mkdir(parents=True, exist_ok=True)
        _run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit])
    return tree


def _requirements(tree: Path) -> list[str]:
    deps = tomllib.loads((tree / "pyproject.toml").read_text())["project"]["dependencies"]
    return [d for d in deps if not SKIP.match(d)]


def _needs_llama_cpp(tree: Path) -> bool:
    return any(re.match(r"^llama-cpp-python", d) for d in
               tomllib.loads((tree / "pyproject.toml").read_text())["project"]["dependencies"])


def _venv(commit: str, tree: Path) -> Path:
    venv = RUN / f"venv-{commit}"
    python = venv / "bin" / "python"
    stamp = venv / ".cbgate-bench-ready"
    if stamp.exists():
        return python
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv)])
    constraints = RUN / "constraints.txt"
    frozen = subprocess.run([str(REPO / ".venv" / "bin" / "pip"), "freeze"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    constraints.write_text("\n".join(ln for ln in frozen if not ln.startswith("-e") and "cbgate" not in ln
                                     and not SKIP.match(ln)) + "\n")
    _run([str(venv / "bin" / "pip"), "install", "-q", "-c", str(constraints), *_requirements(tree)])
    if _needs_llama_cpp(tree):
        print(f"building {LLAMA_CPP_PYTHON} for {commit} (portable, several minutes, once)", flush=True)
        _run(["nice", "-n", "19", str(venv / "bin" / "pip"), "install", "--no-cache-dir",
              "--no-binary", "llama-cpp-python", LLAMA_CPP_PYTHON],
             env={**os.environ, "CMAKE_ARGS": "-DGGML_NATIVE=OFF"})
    stamp.write_text(commit + "\n")
    return python


def prepare(commit: str) -> Baseline:
    tree = _worktree(commit)
    return Baseline(commit, tree / "src", _venv(commit, tree))
