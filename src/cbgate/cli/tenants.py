"""`cbgate env|key|model`: environments, API keys and the model switch."""
from __future__ import annotations

import sys

from cbgate.cli.common import open_admin, when


def cmd_env(args) -> None:
    admin = open_admin(args)
    if args.action == "create":
        print(admin.create_env(args.env_id))
    elif args.action == "set-origins":  # browser pages that may use the env's publishable keys
        origins = admin.set_env_origins(args.env_id, args.origins.split(",") if args.origins else [])
        print(",".join(origins) or "(no origins: publishable keys work from no browser page)")
    else:
        for env_id, created in admin.list_envs():
            print(f"{env_id}\t{when(created)}")


def cmd_key(args) -> None:
    admin = open_admin(args)
    if args.action == "create":
        kind = "publishable" if args.publishable else "server"
        row, plain = admin.create_key(args.env, kind, args.expires_days, args.name or "")
        print(f"created {kind} key {row.id} in {row.env_id}; it is shown only this once:", file=sys.stderr)
        print(plain)
    elif args.action == "list":
        print("id\tprefix\tkind\tname\tcreated\texpires\trevoked\tlast_used")
        for k in admin.list_keys(args.env):
            print(f"{k.id}\t{k.prefix}…\t{k.kind}\t{k.name or '-'}\t{when(k.created_at)}\t"
                  f"{when(k.expires_at)}\t{when(k.revoked_at)}\t{when(k.last_used_at)}")
    else:
        admin.revoke_key(args.key_id)
        print(f"revoked {args.key_id}")


def cmd_model(args) -> None:
    admin = open_admin(args)
    if args.action == "list":
        for group, model, enabled in admin.list_models(args.env, args.group):
            print(f"{group}\t{model}\t{'enabled' if enabled else 'disabled'}")
    else:
        admin.set_model(args.env, args.group, args.model, args.action == "enable")
        print(f"{args.model} in {args.group}: {args.action}d")



def register(sub, common) -> None:
    env = sub.add_parser("env", help="environments").add_subparsers(dest="action", required=True)
    create = env.add_parser("create", parents=[common])
    create.add_argument("env_id", nargs="?")
    env.add_parser("list", parents=[common])
    origins = env.add_parser("set-origins", parents=[common], help="origins allowed to use publishable keys")
    origins.add_argument("env_id")
    origins.add_argument("origins", help="comma-separated, e.g. https://app.example.com,http://localhost:3000")
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
