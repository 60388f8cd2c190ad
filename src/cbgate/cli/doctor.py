"""`cbgate doctor`: look at everything a gateway needs and say what is wrong and how to fix it.

Each check answers ok, warn or fail with one line, and a fix for anything not ok. Nothing is created or
changed: a missing database is reported, not made.
"""
from __future__ import annotations

import asyncio
import importlib.util
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cbgate.cli.commands import add_command
from cbgate.cli.output import add_json_flag, print_json
from cbgate.config import ConfigError, Settings, load_settings
from cbgate.providers.local.source import ModelSourceError, resolve_model_file

SMOKE_MODULE = "cbgate.providers.local.smoke"


@dataclass
class Finding:
    check: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str = ""


def check_data_dir(data_dir: Path) -> Finding:
    if not data_dir.is_dir():
        return Finding("data dir", "fail", f"{data_dir} does not exist",
                       "check --data-dir / $CBGATE_DATA_DIR; `cbgate serve` creates it on first start")
    probe = data_dir / ".doctor-write-test"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        return Finding("data dir", "fail", f"{data_dir} is not writable: {exc.strerror}",
                       f"give the user running cbgate write access to {data_dir}")
    return Finding("data dir", "ok", str(data_dir))


def check_database(settings: Settings) -> list[Finding]:
    from cbgate.store.db import Store, sqlalchemy_url

    url = sqlalchemy_url(settings.database_url)
    if url.startswith("sqlite") and not Path(url.split("///", 1)[1]).exists():
        return [Finding("database", "warn", f"no database yet at {url.split('///', 1)[1]}",
                        "`cbgate serve` creates it (with its first environment and key)")]
    store = Store(settings.database_url)
    try:
        status = store.migration_status()
    except Exception as exc:  # whatever the driver raises: the operator needs its words
        return [Finding("database", "fail", f"{_redact(url)} does not answer: {str(exc).splitlines()[0][:300]}",
                        "check CBGATE_DATABASE_URL, that the server runs and that this host may connect")]
    finally:
        store.close()
    found = [Finding("database", "ok", _redact(url))]
    if status["pending"]:
        found.append(Finding("migrations", "warn", f"{len(status['applied'])} applied, pending: "
                             f"{', '.join(status['pending'])}",
                             "`cbgate serve` applies them at start (take a backup first: docs/upgrading.md)"))
    else:
        found.append(Finding("migrations", "ok", f"all {len(status['applied'])} applied "
                             f"(latest {status['applied'][-1] if status['applied'] else '-'})"))
    return found


def _redact(url: str) -> str:
    """A database URL without its password."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def check_models(settings: Settings, smoke: bool) -> list[Finding]:
    found = []
    for model in settings.catalog:
        for deployment in model.deployments:
            if deployment.kind != "local":
                continue
            source = deployment.options["source"]
            try:
                path = resolve_model_file(source, settings.data_dir / "models")
            except ModelSourceError as exc:
                found.append(Finding(f"model {model.name}", "fail", str(exc),
                                     "fix the deployment's `source` in the config file, or install its package"))
                continue
            found.append(_model_file(model.name, path))
            if found[-1].status == "ok":
                found.append(_threads(model.name, path, deployment.options, settings))
                if smoke:
                    found.append(_smoke(model.name, path, settings))
    return found


def _threads(name: str, path: Path, options: dict, settings: Settings) -> Finding:
    """The engine's threads as the next start will choose them: the catalog's, the cached measurement, or
    the fixed rule and why; never measures (the doctor changes nothing)."""
    from cbgate.providers.local.command import EngineOptions, EngineSetupError
    from cbgate.providers.local.threads import BUDGET_S, known

    try:
        choice = known(EngineOptions.from_deployment(path, options, settings.env_vars), settings.env_vars)
    except EngineSetupError as exc:
        return Finding(f"threads {name}", "warn", f"not known: {exc}")
    if choice is None:
        return Finding(f"threads {name}", "ok", "not measured yet on this machine: the next `cbgate serve` "
                       f"measures them (once, at most {BUDGET_S:.0f} s)")
    return Finding(f"threads {name}", "ok", choice.describe())


def _model_file(name: str, path: Path) -> Finding:
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        return Finding(f"model {name}", "fail", f"{path}: {exc.strerror}", "check the file and its permissions")
    if magic != b"GGUF":
        return Finding(f"model {name}", "fail", f"{path} is not a GGUF file", "point `source` at a .gguf model")
    return Finding(f"model {name}", "ok", f"{path} ({path.stat().st_size / 1e6:.0f} MB)")


def _smoke(name: str, path: Path, settings: Settings) -> Finding:
    """The engine engineer's smoke test: start the engine on the model and evaluate a few tokens."""
    if importlib.util.find_spec(SMOKE_MODULE) is None:
        return Finding(f"engine {name}", "warn", "no engine smoke test in this build", "")
    try:
        from cbgate.providers.local.command import find_llama_server
        binary = find_llama_server(settings.env_vars)
    except Exception as exc:  # EngineSetupError: its message says what to do
        return Finding(f"engine {name}", "fail", str(exc), "run scripts/setup (or scripts/build-engine)")
    run = subprocess.run([sys.executable, "-m", SMOKE_MODULE, "--binary", str(binary), "--model", str(path),
                          "--timeout", "120"], capture_output=True, text=True, timeout=180)
    said = (run.stderr.strip().splitlines() or [""])[-1].removeprefix("cbgate: ")
    if run.returncode == 0:
        return Finding(f"engine {name}", "ok", said)
    return Finding(f"engine {name}", "fail", said, "run scripts/build-engine --force")


def check_port(host: str, port: int) -> Finding:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if _is_cbgate(host, port):
                return Finding("port", "ok", f"{host}:{port} is served by a running cbgate")
            return Finding("port", "fail", f"{host}:{port} is taken: {exc.strerror}",
                           "stop what listens there, or serve on another: cbgate serve --port 8081")
    return Finding("port", "ok", f"{host}:{port} is free")


def _is_cbgate(host: str, port: int) -> bool:
    import requests

    try:
        return requests.get(f"http://{host if ':' not in host else f'[{host}]'}:{port}/livez",
                            timeout=2).json() == {"status": "ok"}
    except (requests.RequestException, ValueError):
        return False


def check_upstreams(settings: Settings) -> list[Finding]:
    """Every catalog upstream answers a TCP connect (the operator's URLs are trusted); tenants' custom
    groups are checked against the egress policy first, as serving would."""
    from cbgate.providers.netguard import EgressPolicy, EgressRefused

    policy = EgressPolicy.parse(settings.env_vars.get("CBGATE_UPSTREAM_ALLOW"))
    targets = [(f"upstream {m.name} ({d.label})", d.options["base_url"], False)
               for m in settings.catalog for d in m.deployments if d.kind != "local"]
    targets += [(f"group {env}/{name}", url, True) for env, name, url in _custom_groups(settings)]
    found = []
    for label, url, guarded in targets:
        address = None
        if guarded:  # the one egress check, DNS included; the probe then goes to an address it checked
            try:
                address = asyncio.run(policy.checked_addresses(url))[1][0]
            except EgressRefused as exc:
                found.append(Finding(label, "fail", str(exc), "allow it in CBGATE_UPSTREAM_ALLOW, or fix the URL"))
                continue
        found.append(_connect(label, url, address))
    return found


def _custom_groups(settings: Settings) -> list[tuple[str, str, str]]:
    from cbgate.store import groups as stored
    from cbgate.store.db import Store

    store = Store(settings.database_url)
    try:
        return [(g.env_id, g.name, g.base_url) for g in stored.list_groups(store) if g.kind == "custom"]
    except Exception:  # the database check reports why
        return []
    finally:
        store.close()


def _connect(label: str, url: str, address: str | None = None) -> Finding:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((address or parts.hostname, port), timeout=3):
            return Finding(label, "ok", f"{parts.hostname}:{port} answers")
    except OSError as exc:
        return Finding(label, "fail", f"{url}: {exc.strerror or exc}",
                       "check that the server runs and that this host may reach it (firewall, proxy)")


def check_redis(settings: Settings) -> list[Finding]:
    if not settings.redis_url:
        return [Finding("redis", "ok", "not configured: each process counts its own limits")]
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return [Finding("redis", "fail", f"{_redact(settings.redis_url)} does not answer: {exc}",
                        f"start Redis, or fix CBGATE_REDIS_URL (meanwhile limits {settings.ratelimit_failure})")]
    finally:
        client.close()
    return [Finding("redis", "ok", _redact(settings.redis_url))]


def check_secret_key(settings: Settings) -> list[Finding]:
    if settings.database_url.startswith(("postgresql://", "postgres://")) and not settings.env_vars.get(
            "CBGATE_SECRET_KEY"):
        return [Finding("secret key", "fail", "CBGATE_SECRET_KEY is not set, with PostgreSQL",
                        "set the same CBGATE_SECRET_KEY on every replica (it encrypts group secrets)")]
    return []


def diagnose(args) -> list[Finding]:
    try:
        settings = load_settings(args.data_dir)
    except ConfigError as exc:
        return [Finding("config", "fail", str(exc), "fix the config file (README: Configuration)")]
    found = [check_data_dir(settings.data_dir), Finding("config", "ok", "valid")]
    if found[0].status == "fail":
        return found
    found += check_database(settings) + check_secret_key(settings)
    found += check_models(settings, smoke=not args.quick)
    found.append(check_port(args.host, args.port))
    found += check_upstreams(settings) + check_redis(settings)
    return found


def cmd_doctor(args) -> None:
    found = diagnose(args)
    if args.json:
        print_json([f.__dict__ for f in found])
    else:
        width = max(len(f.check) for f in found)
        for f in found:
            print(f"{f.status.upper():4}  {f.check:{width}}  {f.detail}")
            if f.fix:
                print(f"{'':4}  {'':{width}}  fix: {f.fix}")
    if any(f.status == "fail" for f in found):
        sys.exit(1)


def register(sub, common) -> None:
    doctor = add_command(sub, "doctor", "check the config file, data dir, database and migrations, secret key, "
                         "model files and engine, port, upstreams and Redis; say what is wrong and how to fix "
                         "it (exit 1 on a failure)",
                         ["cbgate doctor", "cbgate doctor --quick --port 9000 --json"], [common])
    doctor.add_argument("--host", default="127.0.0.1", help="the address serve will listen on (default 127.0.0.1)")
    doctor.add_argument("--port", type=int, default=8080, help="the port serve will listen on, e.g. 8080")
    doctor.add_argument("--quick", action="store_true", help="skip the engine smoke test (it loads the model)")
    add_json_flag(doctor)
    doctor.set_defaults(func=cmd_doctor)
