"""Resolve (env, group, model) to the deployments that may serve it, or the CloudBase error why not.

Groups: `cloudbase` (the operator's catalog), the built-in vendor groups (cbgate.core.vendors, called with
the env's own key) and each env's custom groups. Group adapters are cached per (env, group) and rebuilt
only when the group's row changes, so the hot path is a dict lookup.
"""
from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass

from cbgate.core.secrets import SecretBox
from cbgate.core.tenants import TenantSnapshot
from cbgate.core.vendors import VENDOR_GROUPS, VendorGroup
from cbgate.errors import ModelConfigMissing, ModelDisabled, ModelGroupNotFound, ModelNotSupported
from cbgate.providers.base import Inputs, Provider
from cbgate.providers.registry import ProviderRegistry
from cbgate.providers.upstream_http import Timeouts
from cbgate.store.groups import GroupKind, GroupRow

CATALOG_GROUP = "cloudbase"

log = logging.getLogger("cbgate.resolve")


@dataclass(frozen=True, slots=True)
class Route:
    group: str
    model: str
    providers: list[Provider]


def did_you_mean(name: str, known) -> str:
    near = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {near[0]!r}?" if near else ""


def models_hint(model: str, known) -> str:
    """The models that do exist, so the unknown-model error says what to ask for instead."""
    names = list(known)
    if not names:
        return "; it has no models enabled for this environment"
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    return f"{did_you_mean(model, names)} (models: {shown})"


def custom_group(snapshot: TenantSnapshot, env_id: str, group: str) -> GroupRow | None:
    row = snapshot.groups.get((env_id, group))
    return row if row is not None and row.kind == GroupKind.CUSTOM else None


class Resolver:
    def __init__(self, registry: ProviderRegistry, secrets: SecretBox | None = None):
        self.registry = registry
        self.secrets = secrets or SecretBox(registry.settings)
        self._adapters: dict[tuple[str, str], tuple[GroupRow, Provider]] = {}
        self._revision = -1

    def check_group(self, env_id: str, group: str, snapshot: TenantSnapshot | None = None) -> None:
        if group == CATALOG_GROUP or group in VENDOR_GROUPS:
            return
        if snapshot is None or custom_group(snapshot, env_id, group) is None:
            known = [CATALOG_GROUP, *VENDOR_GROUPS] + ([g for (e, g) in snapshot.groups if e == env_id]
                                                       if snapshot is not None else [])
            raise ModelGroupNotFound(f"model group {group!r} does not exist{did_you_mean(group, known)}")

    def resolve(self, snapshot: TenantSnapshot, env_id: str, group: str, model: str) -> Route:
        if group == CATALOG_GROUP:
            return self._catalog(snapshot, env_id, model)
        self.check_group(env_id, group, snapshot)
        vendor = VENDOR_GROUPS.get(group)
        row = snapshot.groups.get((env_id, group))
        switch = snapshot.model_enabled(env_id, group, model)
        if (switch is None) if vendor is None else (model not in vendor.models):
            known = vendor.models if vendor is not None else snapshot.switches.get((env_id, group), {})
            raise ModelNotSupported(f"model {model!r} is not in group {group!r}{models_hint(model, known)}")
        if row is not None and not row.enabled:
            raise ModelDisabled(f"group {group!r} is switched off for this environment")
        if switch is False:
            raise ModelDisabled(f"model {model!r} is switched off in group {group!r} for this environment")
        if vendor is not None and (row is None or not row.secret):
            raise ModelConfigMissing(f"group {group!r} has no API key for this environment; set one with "
                                     f"`cbgate group set-key --env {env_id} {group} KEY`")
        return Route(group, model, [self._group_adapter(snapshot, row, vendor)])

    def context_window(self, route: Route) -> int | None:
        """The routed model's context in tokens; None where it is not known (tenants' upstreams)."""
        return self.registry.context_window(route.model) if route.group == CATALOG_GROUP else None

    def _catalog(self, snapshot: TenantSnapshot, env_id: str, model: str) -> Route:
        providers = self.registry.deployments(model)
        if not providers:
            known = [m for m in self.registry.by_model if snapshot.model_enabled(env_id, CATALOG_GROUP, m)]
            raise ModelNotSupported(f"model {model!r} is not in group {CATALOG_GROUP!r}{models_hint(model, known)}")
        if not snapshot.model_enabled(env_id, CATALOG_GROUP, model):
            raise ModelDisabled(f"model {model!r} is switched off in group {CATALOG_GROUP!r} for this environment")
        return Route(CATALOG_GROUP, model, providers)

    def _group_adapter(self, snapshot: TenantSnapshot, row: GroupRow, vendor: VendorGroup | None) -> Provider:
        if snapshot.revision != self._revision:
            self._forget_deleted(snapshot)
        slot = (row.env_id, row.name)
        cached = self._adapters.get(slot)
        if cached is not None and (cached[0] is row or cached[0] == row):  # unchanged since it was built
            return cached[1]
        api_key = self.secrets.decrypt(row.secret) if row.secret else None
        timeouts = Timeouts.from_options(row.timeouts) if row.timeouts else None
        if vendor is not None:  # the vendor's fixed, public endpoint: trusted like the operator's catalog
            provider = self.registry.build_upstream(vendor.protocol, name=vendor.name, base_url=vendor.base_url,
                                                    api_key=api_key, timeouts=timeouts)
        else:  # a tenant's URL: the egress policy applies at every connect
            provider = self.registry.build_upstream(row.protocol, name=row.name, base_url=row.base_url,
                                                    api_key=api_key, timeouts=timeouts, guarded=True,
                                                    inputs=Inputs(vision=row.vision, audio_input=row.audio_input))
        # A replaced adapter needs no closing: adapters share the registry's pooled sessions.
        self._adapters[slot] = (row, provider)
        return provider

    def _forget_deleted(self, snapshot: TenantSnapshot) -> None:
        self._revision = snapshot.revision
        for slot in [s for s in self._adapters if s not in snapshot.groups]:
            del self._adapters[slot]

    def enabled_models(self, snapshot: TenantSnapshot, env_id: str, group: str) -> list[str]:
        if group == CATALOG_GROUP:
            return [m for m in self.registry.by_model if snapshot.model_enabled(env_id, group, m)]
        self.check_group(env_id, group, snapshot)
        row = snapshot.groups.get((env_id, group))
        switches = snapshot.switches.get((env_id, group), {})
        vendor = VENDOR_GROUPS.get(group)
        if vendor is not None:
            if row is None or not row.secret or not row.enabled:
                return []  # no key yet: nothing callable
            return [m for m in vendor.models if switches.get(m, True)]
        return [m for m, on in switches.items() if on] if row.enabled else []
