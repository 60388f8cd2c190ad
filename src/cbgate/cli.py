"""The `cbgate` command. Scripts depend on its arguments and on the last line of what it prints."""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone

from cbgate.config import ConfigError, Settings, load_settings
from cbgate.core.admin import Admin
from cbgate.errors import CloudBaseError
from cbgate.providers.local.source import ModelSourceError, resolve_model_file
from cbgate.store.db import Store


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if ts else "-"


def _admin(args) -> Admin:
    settings = load_settings(args.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_url)
    store.migrate()
    return Admin(store, settings)


def _first_start(admin: Admin, host: str, port: int) -> None:
    """With an empty data directory, create an environment and a server key and show them once."""
    if admin.list_envs():
        return
    env_id = admin.create_env()
    _, key = admin.create_key(env_id)
    model = admin.settings.default_models[0] if admin.settings.default_models else "MODEL"
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"cbgate: created environment {env_id} and its first server API key.\n"
          f"cbgate: the key is shown only this once; keep it somewhere safe:\n\n    {key}\n\n"
          f"Try it:\n\n    curl http://{shown_host}:{port}/v1/ai/cloudbase/chat/completions \\\n"
          f"      -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
          f"      -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'\n",
          flush=True)


def _prepare_models(settings: Settings) -> None:
    """Build or fetch model files before the server starts, so progress and errors reach the terminal."""
    for model in settings.catalog:
        for deployment in model.deployments:
            if deployment.kind == "local":
                resolve_model_file(deployment.options["source"], settings.data_dir / "models")


def cmd_serve(args) -> None:
    import uvicorn

    admin = _admin(args)
    os.environ["CBGATE_DATA_DIR"] = str(admin.settings.data_dir)
    _first_start(admin, args.host, args.port)
    admin.store.close()
    _prepare_models(admin.settings)
    uvicorn.run("cbgate.http.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, loop="auto", http="httptools", access_log=False,
                log_level=os.environ.get("CBGATE_LOG_LEVEL", "info").lower(), timeout_graceful_shutdown=30)


def cmd_env(args) -> None:
    admin = _admin(args)
    if args.action == "create":
        print(admin.create_env(args.env_id))
    else:
        for env_id, created in admin.list_envs():
            print(f"{env_id}\t{_when(created)}")


def cmd_key(args) -> None:
    admin = _admin(args)
    if args.action == "create":
        kind = "publishable" if args.publishable else "server"
        row, plain = admin.create_key(args.env, kind, args.expires_days, args.name or "")
        print(f"created {kind} key {row.id} in {row.env_id}; it is shown only this once:", file=sys.stderr)
        print(plain)
    elif args.action == "list":
        print("id\tprefix\tkind\tname\tcreated\texpires\trevoked\tlast_used")
        for k in admin.list_keys(args.env):
            print(f"{k.id}\t{k.prefix}…\t{k.kind}\t{k.name or '-'}\t{_when(k.created_at)}\t"
                  f"{_when(k.expires_at)}\t{_when(k.revoked_at)}\t{_when(k.last_used_at)}")
    else:
        admin.revoke_key(args.key_id)
        print(f"revoked {args.key_id}")


def cmd_model(args) -> None:
    admin = _admin(args)
    if args.action == "list":
        for group, model, enabled in admin.list_models(args.env, args.group):
            print(f"{group}\t{model}\t{'enabled' if enabled else 'disabled'}")
    else:
        admin.set_model(args.env, args.group, args.model, args.action == "enable")
        print(f"{args.model} in {args.group}: {args.action}d")


def build_parser() -> argparse.ArgumentParser:
    data_help = "data directory (default: $CBGATE_DATA_DIR or ~/.cbgate)"
    common = argparse.ArgumentParser(add_help=False)  # lets --data-dir follow the subcommand too
    common.add_argument("--data-dir", dest="sub_data_dir", metavar="DIR", help=data_help)
    parser = argparse.ArgumentParser(prog="cbgate", description=__doc__)
    parser.add_argument("--data-dir", metavar="DIR", help=data_help)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="serve the CloudBase AI API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (one per core is a good start)")
    serve.set_defaults(func=cmd_serve)

    env = sub.add_parser("env", help="environments").add_subparsers(dest="action", required=True)
    create = env.add_parser("create", parents=[common])
    create.add_argument("env_id", nargs="?")
    env.add_parser("list", parents=[common])
    for p in env.choices.values():
        p.set_defaults(func=cmd_env)

    key = sub.add_parser("key", help="API keys").add_subparsers(dest="action", required=True)
    create = key.add_parser("create", parents=[common])
    create.add_argument("--env", required=True)
    create.add_argument("--expires-days", type=float)
    create.add_argument("--publishable", action="store_true", help="a browser-safe key for chat only")
    create.add_argument("--name")
    key.add_parser("list", parents=[common]).add_argument("--env", required=True)
    key.add_parser("revoke", parents=[common]).add_argument("key_id")
    for p in key.choices.values():
        p.set_defaults(func=cmd_key)

    model = sub.add_parser("model", help="the model switch").add_subparsers(dest="action", required=True)
    model.add_parser("list", parents=[common]).add_argument("--env", required=True)
    model.choices["list"].add_argument("--group")
    for action in ("enable", "disable"):
        p = model.add_parser(action, parents=[common])
        p.add_argument("--env", required=True)
        p.add_argument("--group", required=True)
        p.add_argument("model")
    for p in model.choices.values():
        p.set_defaults(func=cmd_model)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.data_dir = args.sub_data_dir or args.data_dir
    try:
        args.func(args)
    except (CloudBaseError, ConfigError, ModelSourceError) as exc:
        print(f"cbgate: error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
