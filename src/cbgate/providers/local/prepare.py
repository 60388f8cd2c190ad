"""`python -m cbgate.providers.local.prepare`: fetch and verify the default catalog's model files into their
caches (scripts/setup and the container image run it), so that `cbgate serve` starts offline afterwards."""
from __future__ import annotations

import sys
from pathlib import Path

from cbgate.config import default_catalog
from cbgate.providers.local.source import ModelSourceError, resolve_model_file


def main() -> int:
    for model in default_catalog():
        for deployment in model.deployments:
            try:
                # a `hf:` source would land here; the default catalog has none
                path = resolve_model_file(deployment.options["source"], Path.cwd() / "models")
            except ModelSourceError as exc:
                print(f"cbgate: {model.name}: {exc}", file=sys.stderr)
                return 1
            print(f"     {model.name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
