"""Write an operator catalog (`<data_dir>/cbgate.toml`) for a test gateway: models and their deployments."""
from __future__ import annotations

from pathlib import Path

import orjson

# The embedded model over the fake engine (tests/support/fake_engine.py); tests/e2e use the real one.
EMBEDDED = {"name": "gemma-3-270m", "default": True, "deployments": [
    {"kind": "local", "source": "package:tests.support.fake_engine", "name": "embedded-gemma"}]}


def _value(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return orjson.dumps(value).decode()  # strings, numbers and booleans read the same in TOML


def write_catalog(data_dir: Path, models: list[dict], include_embedded: bool = True,
                  engine: dict | None = None) -> Path:
    """models: [{"name", "default", "price", "deployments": [{"kind", "base_url", "api_key_env", ...}]}];
    `engine`: options of the embedded deployment (e.g. {"parallel": 1})."""
    embedded = {**EMBEDDED, "deployments": [{**EMBEDDED["deployments"][0], **(engine or {})}]}
    lines = []
    for model in ([embedded] if include_embedded else []) + models:
        lines += ["[[models]]", f"name = {_value(model['name'])}", f"default = {_value(model.get('default', True))}"]
        if "price" in model:  # an inline table: {currency = "CNY", input = "0.0008", ...}
            lines.append(f"price = {_value(model['price'])}")
        for deployment in model["deployments"]:
            lines.append("[[models.deployments]]")
            lines += [f"{k} = {_value(v)}" for k, v in deployment.items()]
        lines.append("")
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "cbgate.toml"
    path.write_text("\n".join(lines))
    return path
