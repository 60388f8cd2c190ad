"""Model group operations (create with a check, list, set-key, switch, edit, delete), held by core.admin.Admin
as `admin.groups` so the CLI and the admin API share them."""
from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable

from cbgate.config import LiveSettings, Settings, live
from cbgate.core.resolve import CATALOG_GROUP, did_you_mean
from cbgate.core.secrets import SecretBox
from cbgate.core.vendors import VENDOR_GROUPS
from cbgate.errors import CloudBaseError, InvalidParam, ModelGroupNotFound, ModelRequestFailed
from cbgate.providers.base import UNDECLARED, Inputs
from cbgate.providers.netguard import InvalidUpstreamURL, parse_upstream_url
from cbgate.providers.registry import UPSTREAM_PROTOCOLS, ProviderRegistry
from cbgate.providers.upstream_http import Timeouts
from cbgate.store import envs as stored_envs
from cbgate.store import groups as stored
from cbgate.store.db import StoreConflict
from cbgate.store.groups import GroupKind, GroupRow
from cbgate.text import text_problem

GROUP_NAME = re.compile(r"\A[a-z][a-z0-9_-]{0,63}\Z")
MODEL_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}\Z")


@dataclass(frozen=True, slots=True)
class GroupView:
    """What may be shown of a group: never its secret, only whether it has one. `switches` are its models
    with their switches, in the group's order."""
    name: str
    kind: GroupKind
    protocol: str
    base_url: str | None
    enabled: bool
    has_key: bool
    switches: tuple[tuple[str, bool], ...]
    timeouts: dict[str, float] | None = None
    inputs: Inputs = UNDECLARED  # what a custom group's upstream reads besides text, as declared

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(m for m, _ in self.switches)


@dataclass(frozen=True, slots=True)
class GroupChange:
    """One edit of a group (the admin API's PUT); None leaves that part as it is. `timeouts` of {} or
    `reset_timeouts` put the defaults back."""
    enabled: bool | None = None
    api_key: str | None = None
    base_url: str | None = None
    models: list[str] | None = None
    timeouts: dict[str, float] | None = None
    reset_timeouts: bool = False
    inputs: dict[str, bool | None] | None = None  # a custom group's declarations to change: {"vision": True, ...}


class UpstreamCheckFailed(ModelRequestFailed):
    """The base URL did not answer with that secret when the group was created."""


def validate_group_name(name: str) -> None:
    if not isinstance(name, str) or not GROUP_NAME.match(name):
        raise InvalidParam(f"group name {ascii(name)} must be 1-64 characters: lower-case letters, digits, "
                           "'-' and '_', starting with a letter")
    if name.startswith(CATALOG_GROUP):
        raise InvalidParam(f"group name {name!r} may not start with {CATALOG_GROUP!r} (reserved for the catalog)")
    if name in VENDOR_GROUPS:
        raise InvalidParam(f"group name {name!r} is a built-in group: give it a key instead of creating it")


def validate_models(models: list[str]) -> list[str]:
    if len(models) > 1000:
        raise InvalidParam("a group may list at most 1000 models")
    cleaned = list(dict.fromkeys(m.strip() for m in models if m.strip()))
    if not cleaned:
        raise InvalidParam("a group needs at least one model")
    for model in cleaned:
        if not MODEL_NAME.match(model):
            raise InvalidParam(f"model name {ascii(model)} is not valid "
                               "(letters, digits and . _ : / @ + -, at most 128)")
    return cleaned


def validate_secret(api_key: object) -> None:
    """A group's upstream key goes out in a header: printable text only (a CR/LF would forge headers)."""
    problem = text_problem(api_key, 4096)
    if problem or not api_key.isascii():
        raise InvalidParam(f"the key {problem or 'must be ASCII'}")


def validate_timeouts(timeouts: dict[str, float] | None) -> dict[str, float] | None:
    """A group's timeouts in seconds as they are stored, refused with a clear message when unusable."""
    if not timeouts:
        return None
    try:
        Timeouts.from_options(timeouts)
    except (TypeError, ValueError) as exc:
        raise InvalidParam(f"timeouts: {exc}") from None
    return {k: float(v) for k, v in sorted(timeouts.items())}


INPUT_FIELDS = ("vision", "audio_input")  # providers/base.Inputs' fields, as the CLI and the admin API name them


def validate_inputs(inputs: dict[str, bool | None]) -> dict[str, bool | None]:
    """Declarations of what an upstream reads besides text: true, false, or null (not declared: sent as is)."""
    for name, value in inputs.items():
        if name not in INPUT_FIELDS:
            raise InvalidParam(f"unknown capability {ascii(name)[:40]}; known: {', '.join(INPUT_FIELDS)}")
        if value is not None and not isinstance(value, bool):
            raise InvalidParam(f"{name} must be true, false or null (not declared)")
    return inputs


def validate_base_url(url: str) -> str:
    """Read as the HTTP client will read it (netguard), so what is stored is what will be called."""
    try:
        target = parse_upstream_url(url)
    except InvalidUpstreamURL as exc:
        raise InvalidParam(f"base URL must be an http:// or https:// URL with a host: {exc}") from None
    if target.url.query_string or target.url.fragment:
        raise InvalidParam("base URL may not carry a query or a fragment")
    return url.rstrip("/")


CLI_SKIP_HINT = "use --no-check to create the group anyway"


def check_upstream(settings, name: str, protocol: str, base_url: str, api_key: str | None,
                   skip_hint: str | None = CLI_SKIP_HINT) -> None:
    """Ask the upstream for its model list (openai) or make a minimal call (anthropic) with this secret.
    Runs on its own loop in a thread, so it works from the CLI and from inside a running server alike.
    The egress policy applies as it will when serving (one policy, one check), whoever creates the group."""
    failure: list[BaseException] = []

    async def run() -> None:
        registry = ProviderRegistry(settings)
        await registry.start()
        try:
            await registry.build_upstream(protocol, name=name, base_url=base_url, api_key=api_key,
                                          guarded=True).check()
        finally:
            await registry.close()

    def thread() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=thread, name="cbgate-group-check")
    worker.start()
    worker.join()
    if failure:
        exc = failure[0]
        reason = exc.message if isinstance(exc, CloudBaseError) else str(exc) or type(exc).__name__
        hint = f" ({skip_hint})" if skip_hint else ""
        raise UpstreamCheckFailed(f"the base URL {base_url} did not answer as an {protocol} upstream with this "
                                  f"key: {reason}{hint}")


class GroupAdmin:
    def __init__(self, store, settings: Settings | LiveSettings, require_env: Callable[[str], None]):
        self.store = store
        self.live = live(settings)
        self.require_env = require_env  # refuses an unknown environment (core.admin.Admin's check)

    @property
    def settings(self) -> Settings:
        return self.live.current

    def _secrets(self) -> SecretBox:
        return SecretBox(self.settings)

    def create_group(self, env_id: str, name: str, base_url: str, models: list[str], api_key: str | None = None,
                     protocol: str = "openai", check: bool = True,
                     timeouts: dict[str, float] | None = None, inputs: dict[str, bool | None] | None = None,
                     skip_hint: str | None = CLI_SKIP_HINT) -> GroupView:
        """`skip_hint` says, in the caller's words, how to create the group without the check; `inputs`
        declares what the upstream reads besides text ({"vision": True}; left out: not declared)."""
        self.require_env(env_id)
        validate_group_name(name)
        if protocol not in UPSTREAM_PROTOCOLS:
            raise InvalidParam(f"protocol {protocol!r} is not supported; use {' or '.join(UPSTREAM_PROTOCOLS)}")
        base_url, models = validate_base_url(base_url), validate_models(models)
        timeouts = validate_timeouts(timeouts)
        declared = Inputs(**validate_inputs(inputs or {}))
        if api_key:
            validate_secret(api_key)
        if self._group_row(env_id, name) is not None:
            raise InvalidParam(f"group {name!r} already exists in {env_id}")
        if check:
            check_upstream(self.settings, name, protocol, base_url, api_key or None, skip_hint)
        now = time.time()
        secret = self._secrets().encrypt(api_key) if api_key else None
        row = GroupRow(env_id=env_id, name=name, kind=GroupKind.CUSTOM, base_url=base_url, protocol=protocol,
                       secret=secret, enabled=True, created_at=now, updated_at=now, timeouts=timeouts,
                       vision=declared.vision, audio_input=declared.audio_input)
        try:
            stored.insert_group(self.store, row, models)
        except StoreConflict:
            raise InvalidParam(f"group {name!r} already exists in {env_id}") from None
        return GroupView(name, GroupKind.CUSTOM, protocol, base_url, True, bool(secret),
                         tuple((m, True) for m in models), timeouts, declared)

    def list_groups(self, env_id: str) -> list[GroupView]:
        """The catalog, the built-in vendor groups, then the env's custom groups, each with its switches."""
        self.require_env(env_id)
        rows = {r.name: r for r in stored.list_groups(self.store, env_id)}
        switches: dict[str, dict[str, bool]] = {}
        for _, group, model, on in stored_envs.model_switches(self.store, env_id):
            switches.setdefault(group, {})[model] = bool(on)
        catalog = switches.get(CATALOG_GROUP, {})
        views = [GroupView(CATALOG_GROUP, GroupKind.CATALOG, "catalog", None, True, True,
                           tuple((m.name, catalog.get(m.name, False)) for m in self.settings.catalog))]
        for vendor in VENDOR_GROUPS.values():
            row, on = rows.get(vendor.name), switches.get(vendor.name, {})
            views.append(GroupView(vendor.name, GroupKind.VENDOR, vendor.protocol, vendor.base_url,
                                   row.enabled if row else True, bool(row and row.secret),
                                   tuple((m, on.get(m, True)) for m in vendor.models),
                                   row.timeouts if row else None))
        for row in rows.values():
            if row.kind == GroupKind.CUSTOM:
                views.append(GroupView(row.name, GroupKind.CUSTOM, row.protocol, row.base_url, row.enabled,
                                       bool(row.secret), tuple(switches.get(row.name, {}).items()),
                                       row.timeouts, Inputs(vision=row.vision, audio_input=row.audio_input)))
        return views

    def change_group(self, env_id: str, name: str, change: GroupChange) -> None:
        """Apply one edit whole or not at all: every part is checked before any is stored."""
        self.require_env(env_id)
        if name == CATALOG_GROUP:
            raise InvalidParam(f"{CATALOG_GROUP!r} is the operator's catalog: switch its models one by one")
        row = self._group_row(env_id, name)
        if row is None and name not in VENDOR_GROUPS:
            raise self._no_such_group(env_id, name)
        if change.inputs is not None and name in VENDOR_GROUPS:
            raise InvalidParam(f"{name!r} is a built-in group: its models differ in what they read, and image and "
                               "audio parts go to the vendor as sent; declare what an upstream reads on a custom group")
        custom_only = change.base_url is not None or change.models is not None or change.inputs is not None
        if custom_only and (row is None or row.kind != GroupKind.CUSTOM):
            raise ModelGroupNotFound(f"custom group {name!r} does not exist in {env_id}")
        url = validate_base_url(change.base_url) if change.base_url is not None else None
        models = validate_models(change.models) if change.models is not None else None
        timeouts = validate_timeouts(change.timeouts)
        inputs = validate_inputs(change.inputs) if change.inputs is not None else {}
        if change.api_key is not None:
            if not change.api_key:
                raise InvalidParam("the key may not be empty")
            validate_secret(change.api_key)
        if change.enabled is not None and not isinstance(change.enabled, bool):
            raise InvalidParam("enabled must be true or false")
        values: dict = {**inputs}
        if url is not None:
            values["base_url"] = url
        if timeouts is not None or change.reset_timeouts:
            values["timeouts"] = timeouts
        if change.api_key is not None:
            values["secret"] = self._secrets().encrypt(change.api_key)
        if change.enabled is not None:
            values["enabled"] = change.enabled
        if (values or models is not None) and not stored.change_group(
                self.store, env_id, name, values, models, self._first_vendor_row(env_id, name)):
            raise self._no_such_group(env_id, name)

    def set_group_key(self, env_id: str, name: str, api_key: str) -> None:
        self.change_group(env_id, name, GroupChange(api_key=api_key))

    def set_group_timeouts(self, env_id: str, name: str, timeouts: dict[str, float] | None) -> None:
        """Connect, first-byte, idle and total timeouts for calls to this group; None: the defaults."""
        self.change_group(env_id, name, GroupChange(timeouts=timeouts, reset_timeouts=not timeouts))

    def set_group_inputs(self, env_id: str, name: str, inputs: dict[str, bool | None]) -> None:
        """Declare what a custom group's upstream reads besides text; a field given None is no longer declared."""
        self.change_group(env_id, name, GroupChange(inputs=inputs))

    def set_group_enabled(self, env_id: str, name: str, enabled: bool) -> None:
        self.change_group(env_id, name, GroupChange(enabled=enabled))

    @staticmethod
    def _first_vendor_row(env_id: str, name: str) -> GroupRow | None:
        """The row a vendor group gets with its first change (None: not a vendor group)."""
        if name not in VENDOR_GROUPS:
            return None
        now, vendor = time.time(), VENDOR_GROUPS[name]
        return GroupRow(env_id=env_id, name=name, kind=GroupKind.VENDOR, base_url=vendor.base_url,
                        protocol=vendor.protocol, secret=None, enabled=True, created_at=now, updated_at=now)

    def delete_group(self, env_id: str, name: str) -> None:
        self.require_env(env_id)
        if name == CATALOG_GROUP or name in VENDOR_GROUPS:
            raise InvalidParam(f"{name!r} is a built-in group and cannot be deleted; switch it off instead")
        if not stored.delete_group(self.store, env_id, name):
            raise self._no_such_group(env_id, name)

    def _no_such_group(self, env_id: str, name: str) -> ModelGroupNotFound:
        known = [CATALOG_GROUP, *VENDOR_GROUPS, *(r.name for r in stored.list_groups(self.store, env_id))]
        return ModelGroupNotFound(f"model group {name!r} does not exist in {env_id}{did_you_mean(name, known)}")

    # Used by Admin.list_models / set_model for every group that is not the catalog.
    def _group_row(self, env_id: str, name: str) -> GroupRow | None:
        return next((r for r in stored.list_groups(self.store, env_id) if r.name == name), None)

    def group_models(self, env_id: str, name: str) -> list[tuple[str, bool]]:
        """(model, enabled) for a vendor or custom group; raises AI_MODEL_NOT_FOUND for any other name."""
        switches = {m: on for _, g, m, on in stored_envs.model_switches(self.store, env_id) if g == name}
        if name in VENDOR_GROUPS:
            return [(m, bool(switches.get(m, True))) for m in VENDOR_GROUPS[name].models]
        row = self._group_row(env_id, name)
        if row is None or row.kind != GroupKind.CUSTOM:
            raise self._no_such_group(env_id, name)
        return [(m, bool(on)) for m, on in switches.items()]

    def configured_group_names(self, env_id: str) -> list[str]:
        """Vendor groups the env gave a key to, then its custom groups."""
        rows = stored.list_groups(self.store, env_id)
        vendors = [r.name for r in rows if r.kind == GroupKind.VENDOR and r.secret]
        return vendors + [r.name for r in rows if r.kind == GroupKind.CUSTOM]

    def probe_group(self, env_id: str, name: str) -> float:
        """Ask a configured group's upstream whether it answers with the stored key; seconds it took.
        Raises UpstreamCheckFailed with the upstream's reason."""
        self.require_env(env_id)
        row = self._group_row(env_id, name)
        if row is None:
            if name in VENDOR_GROUPS:
                raise InvalidParam(f"group {name!r} has no key yet: set one before testing it")
            raise ModelGroupNotFound(f"model group {name!r} does not exist in {env_id}")
        api_key = self._secrets().decrypt(row.secret) if row.secret else None
        started = time.monotonic()
        check_upstream(self.settings, name, row.protocol, row.base_url, api_key, skip_hint=None)
        return time.monotonic() - started

