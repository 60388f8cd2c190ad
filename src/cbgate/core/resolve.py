"""Resolve (env, group, model) to the deployments that may serve it, or the CloudBase error why not."""
from __future__ import annotations

from dataclasses import dataclass

from cbgate.core.tenants import TenantSnapshot
from cbgate.errors import ModelDisabled, ModelGroupNotFound, ModelNotSupported
from cbgate.providers.base import Provider
from cbgate.providers.registry import ProviderRegistry

CATALOG_GROUP = "cloudbase"


@dataclass(frozen=True, slots=True)
class Route:
    group: str
    model: str
    providers: list[Provider]


class Resolver:
    def __init__(self, registry: ProviderRegistry):
        self.registry = registry

    def check_group(self, env_id: str, group: str) -> None:
        if group != CATALOG_GROUP:
            raise ModelGroupNotFound(f"model group {group!r} does not exist")

    def resolve(self, snapshot: TenantSnapshot, env_id: str, group: str, model: str) -> Route:
        self.check_group(env_id, group)
        providers = self.registry.deployments(model)
        if not providers:
            raise ModelNotSupported(f"model {model!r} is not in group {group!r}")
        if not snapshot.model_enabled(env_id, group, model):
            raise ModelDisabled(f"model {model!r} is switched off in group {group!r} for this environment")
        return Route(group, model, providers)

    def enabled_models(self, snapshot: TenantSnapshot, env_id: str, group: str) -> list[str]:
        self.check_group(env_id, group)
        return [m for m in self.registry.by_model if snapshot.model_enabled(env_id, group, m)]
