"""Builds provider adapters from the operator's catalog. The only place that maps a kind to a class."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from cbgate.config import CatalogModel, Deployment, Settings
from cbgate.providers.anthropic import AnthropicAdapter
from cbgate.providers.base import UNDECLARED, Inputs, Provider
from cbgate.providers.local.child import EngineChild
from cbgate.providers.local.command import EngineOptions
from cbgate.providers.local.fair_queue import FairQueue
from cbgate.providers.local.provider import EngineProvider, EngineStats, SamplingDefaults
from cbgate.providers.local.source import resolve_model_file
from cbgate.providers.local.supervisor import EngineSupervisor
from cbgate.providers.local.threads import tuned
from cbgate.providers.netguard import EgressPolicy
from cbgate.providers.openai_compat import OpenAICompatAdapter
from cbgate.providers.token_estimate import TokenEstimator
from cbgate.providers.upstream_http import RetryPolicy, Timeouts, UpstreamClient

UPSTREAM_PROTOCOLS = ("openai", "anthropic")


class ProviderRegistry:
    """Model name -> its deployments' adapters, in the catalog's order (first is preferred)."""

    def __init__(self, settings: Settings, overrides: dict[str, Provider] | None = None):
        self.settings = settings
        self.overrides = overrides or {}
        self.by_model: dict[str, list[Provider]] = {}
        self._engines: dict[Path, EngineProvider] = {}
        # one pooled client for every upstream adapter; its sessions open in start(), on the running loop
        self.upstream = UpstreamClient(EgressPolicy.parse(settings.env_vars.get("CBGATE_UPSTREAM_ALLOW")))
        # The engines' own client: a new loopback connection for every request (llama-server may close one
        # after a streamed answer, and a reused closed connection fails the request), not retried: a request
        # the engine died under is answered as such, and the provider waits once for an engine found dead.
        self.engine_client = UpstreamClient(EgressPolicy.parse(None), RetryPolicy(attempts=1), keepalive=None)
        self.estimator = TokenEstimator()

    def build(self) -> None:
        """Create every adapter; loads local model files (slow, so call it off the event loop)."""
        for model in self.settings.catalog:
            self.by_model[model.name] = [self._adapter(model, d) for d in model.deployments]

    def _adapter(self, model: CatalogModel, deployment: Deployment) -> Provider:
        if deployment.label in self.overrides:
            return self.overrides[deployment.label]
        if deployment.kind == "local":
            return self._local(deployment)
        if deployment.kind in UPSTREAM_PROTOCOLS:
            return self._catalog_upstream(model, deployment)
        raise ValueError(f"model {model.name}: deployment kind {deployment.kind} is not available yet")

    def _local(self, deployment: Deployment) -> EngineProvider:
        """A supervised llama-server child for one model file (started in start())."""
        opts = deployment.options
        path = resolve_model_file(opts["source"], self.settings.data_dir / "models")
        engine = self._engines.get(path)
        if engine is None:
            options = tuned(EngineOptions.from_deployment(path, opts, self.settings.env_vars), self.settings.env_vars)
            log_path = self.settings.data_dir / "logs" / f"engine-{_file_name(deployment.label)}.log"
            supervisor = EngineSupervisor(deployment.label, lambda: EngineChild(options, log_path))
            defaults = SamplingDefaults(temperature=float(opts.get("temperature", 0.7)),
                                        top_p=float(opts.get("top_p", 0.95)), max_tokens=int(opts.get("max_tokens", 512)))
            engine = EngineProvider(deployment.label, supervisor, FairQueue(options.parallel, self.settings.engine_queue),
                                    self.engine_client, self.estimator, defaults,
                                    inputs=Inputs(vision=opts.get("vision", False),
                                                  audio_input=opts.get("audio_input", False)))
            self._engines[path] = engine
        return engine

    def _catalog_upstream(self, model: CatalogModel, deployment: Deployment) -> Provider:
        """An operator's upstream: trusted URL, secret read from the environment variable it names."""
        opts = deployment.options
        api_key, timeouts = upstream_options(self.settings, model, deployment)
        return self.build_upstream(deployment.kind, name=deployment.label, base_url=opts["base_url"], api_key=api_key,
                                   upstream_model=opts.get("model"), timeouts=timeouts,
                                   inputs=Inputs(vision=opts.get("vision"), audio_input=opts.get("audio_input")))

    def build_upstream(self, protocol: str, *, name: str, base_url: str, api_key: str | None,
                       upstream_model: str | None = None, timeouts: Timeouts | None = None,
                       guarded: bool = False, inputs: Inputs = UNDECLARED) -> Provider:
        """An adapter for one upstream (cheap: it shares this registry's pooled sessions; nothing to close).

        `guarded=True` for tenant-configured URLs: the egress policy (CBGATE_UPSTREAM_ALLOW) is enforced
        at every connect. Operator URLs (catalog, CLI) are trusted. `inputs`: what its operator declared it
        reads besides text (base.Inputs; undeclared by default: parts go up as sent).
        """
        kinds = {"openai": OpenAICompatAdapter, "anthropic": AnthropicAdapter}
        if protocol not in kinds:
            raise ValueError(f"unknown upstream protocol {protocol!r}; use openai or anthropic")
        return kinds[protocol](name, base_url=base_url, api_key=api_key, client=self.upstream,
                               estimator=self.estimator, upstream_model=upstream_model, timeouts=timeouts,
                               guarded=guarded, inputs=inputs)

    def reload_catalog(self, settings: Settings) -> list[str]:
        """Take a new catalog (SIGHUP). Upstream deployments are rebuilt (cheap: pooled sessions); embedded
        ones keep running as they are, so a model whose embedded deployment is new or changed keeps its old
        form until a restart. Returns those models' names. Raises ValueError and changes nothing when a
        deployment cannot be built."""
        old = {m.name: m for m in self.settings.catalog}
        kept, by_model, restart = [], {}, []
        for model in settings.catalog:
            before = old.get(model.name)
            local = [d for d in model.deployments if d.kind == "local"]
            if local and local != [d for d in (before.deployments if before else ()) if d.kind == "local"]:
                restart.append(model.name)
                if before is not None:  # its engine stays until a restart; its price applies at once
                    kept.append(replace(before, price=model.price))
                    by_model[model.name] = self.by_model[model.name]
                continue
            by_model[model.name] = [self.by_model[model.name][before.deployments.index(d)] if d.kind == "local"
                                    else self._adapter(model, d) for d in model.deployments]
            kept.append(model)
        self.by_model = by_model
        self.settings = replace(settings, catalog=tuple(kept))
        return restart

    async def start(self) -> None:
        """Open the upstream sessions on the running loop and start the engines, each ready once it has
        evaluated a token (call once, in the app's startup)."""
        await self.upstream.start()
        await self.engine_client.start()
        # Every start runs to its end before a failure is raised, so close() finds no engine half-started.
        outcomes = await asyncio.gather(*(engine.start() for engine in self._engines.values()),
                                        return_exceptions=True)
        failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failed is not None:
            raise failed

    def engine_stats(self) -> list[EngineStats]:
        return [engine.stats() for engine in self._engines.values()]

    def deployments(self, model: str) -> list[Provider]:
        return self.by_model.get(model, [])

    def context_window(self, model: str) -> int | None:
        """Tokens the model's context holds: the smallest of its deployments' (`n_ctx` of an embedded one,
        `context_window` of an upstream), so a request that fits one fits its fallbacks; None if unknown."""
        found = self.settings.catalog_model(model)
        windows = []
        for deployment in found.deployments if found else ():
            value = deployment.options.get("n_ctx", 4096) if deployment.kind == "local" \
                else deployment.options.get("context_window")
            if value:
                windows.append(int(value))
        return min(windows) if windows else None

    async def close(self) -> None:
        # Engines of models a reload took out of the catalog are no longer in by_model, but still run.
        closed = set()
        for providers in [*self.by_model.values(), self._engines.values()]:
            for provider in providers:
                if id(provider) not in closed:
                    closed.add(id(provider))
                    await provider.close()
        self._engines.clear()
        await self.upstream.close()
        await self.engine_client.close()


def upstream_options(settings: Settings, model: CatalogModel, deployment: Deployment) -> tuple[str | None, Timeouts]:
    """A catalog upstream's secret (from the environment variable it names) and timeouts; ValueError
    saying which model is wrong."""
    opts = deployment.options
    key_env = opts.get("api_key_env")
    api_key = settings.env_vars.get(key_env) if key_env else None
    if key_env and not api_key:
        raise ValueError(f"model {model.name}: environment variable {key_env} (api_key_env) is not set")
    try:
        return api_key, Timeouts.from_options(opts.get("timeouts"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model {model.name}: {exc}") from None


def catalog_problems(settings: Settings) -> list[str]:
    """What in the operator's catalog would stop the gateway from starting, one line each; builds nothing
    (so `cbgate serve` can say it before the server starts)."""
    problems = []
    for model in settings.catalog:
        for deployment in model.deployments:
            if deployment.kind == "local":
                continue
            if deployment.kind not in UPSTREAM_PROTOCOLS:
                problems.append(f"model {model.name}: deployment kind {deployment.kind} is not available yet")
                continue
            try:
                upstream_options(settings, model, deployment)
            except ValueError as exc:
                problems.append(str(exc))
    return problems


def _file_name(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:80]
