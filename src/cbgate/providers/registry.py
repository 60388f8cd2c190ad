"""Builds provider adapters from the operator's catalog. The only place that maps a kind to a class."""
from __future__ import annotations

from pathlib import Path

from cbgate.config import CatalogModel, Deployment, Settings
from cbgate.providers.base import Provider
from cbgate.providers.local.engine import LocalEngine
from cbgate.providers.local.provider import LocalProvider
from cbgate.providers.local.source import resolve_model_file


class ProviderRegistry:
    """Model name -> its deployments' adapters, in the catalog's order (first is preferred)."""

    def __init__(self, settings: Settings, overrides: dict[str, Provider] | None = None):
        self.settings = settings
        self.overrides = overrides or {}
        self.by_model: dict[str, list[Provider]] = {}
        self._engines: dict[Path, LocalEngine] = {}

    def build(self) -> None:
        """Create every adapter; loads local model files (slow, so call it off the event loop)."""
        for model in self.settings.catalog:
            self.by_model[model.name] = [self._adapter(model, d) for d in model.deployments]

    def _adapter(self, model: CatalogModel, deployment: Deployment) -> Provider:
        if deployment.label in self.overrides:
            return self.overrides[deployment.label]
        if deployment.kind == "local":
            return self._local(deployment)
        raise ValueError(f"model {model.name}: deployment kind {deployment.kind} is not available yet")

    def _local(self, deployment: Deployment) -> LocalProvider:
        opts = deployment.options
        path = resolve_model_file(opts["source"], self.settings.data_dir / "models")
        engine = self._engines.get(path)
        if engine is None:
            engine = LocalEngine(path, n_ctx=int(opts.get("n_ctx", 4096)),
                                 n_threads=opts.get("n_threads"), queue_limit=self.settings.engine_queue)
            engine.load()
            self._engines[path] = engine
        return LocalProvider(deployment.label, engine, temperature=float(opts.get("temperature", 0.7)),
                             top_p=float(opts.get("top_p", 0.95)), max_tokens=int(opts.get("max_tokens", 512)))

    def deployments(self, model: str) -> list[Provider]:
        return self.by_model.get(model, [])

    async def close(self) -> None:
        closed = set()
        for providers in self.by_model.values():
            for provider in providers:
                if id(provider) not in closed:
                    closed.add(id(provider))
                    await provider.close()
        self._engines.clear()
