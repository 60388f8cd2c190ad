"""`cbgate env|key|model`: environments, API keys and the model switch."""
from __future__ import annotations

import sys

from cbgate.cli.commands import add_command, add_group
from cbgate.cli.common import iso, open_admin
from cbgate.cli.output import add_json_flag, print_json, print_rows
from cbgate.core.key_kinds import KeyKind
from cbgate.core.permissions import LIMIT_FIELDS, OWN, KeyPermissions, from_json, parse_mcp_specs
from cbgate.errors import InvalidParam
from cbgate.store.groups import GroupKind
from cbgate.text import for_terminal

MCP_HELP = ("MCP tools the key may call: SERVICE:TOOL[,TOOL...] or SERVICE:* (repeatable, one service each); "
            "without it a server key may use every MCP service of its env and a publishable key none")
ENV_HELP = "environment id, e.g. env-k3x9q2ma (`cbgate env list` shows them)"


def cmd_env(args) -> None:
    admin = open_admin(args)
    if args.action == "create":
        print(admin.create_env(args.env_id))
    elif args.action == "set-origins":  # browser pages that may use the env's publishable keys
        origins = admin.set_env_origins(args.env_id, args.origins.split(",") if args.origins else [])
        print(",".join(origins) or "(no origins: publishable keys work from no browser page)")
    else:
        print_rows(args, ("id", "created"), [{"id": env_id, "created": iso(created)}
                                             for env_id, created in admin.list_envs()])


def cmd_key(args) -> None:
    admin = open_admin(args)
    if args.action == "create":
        kind = KeyKind.PUBLISHABLE if args.publishable else KeyKind.SERVER
        permissions = KeyPermissions(mcp=parse_mcp_specs(args.mcp)) if args.mcp else None
        row, plain = admin.create_key(args.env, kind, args.expires_days, args.name or "", permissions=permissions)
        print(f"created {kind} key {row.id} in {row.env_id}; it is shown only this once:", file=sys.stderr)
        print(plain)
    elif args.action == "list":
        headers = ("id", "prefix", "kind", "name", "created", "expires", "revoked", "last_used", "mcp", "models",
                   "limits")
        rows = [{"id": k.id, "prefix": k.prefix, "kind": k.kind, "name": k.name or None,
                 "created": iso(k.created_at), "expires": iso(k.expires_at), "revoked": iso(k.revoked_at),
                 "last_used": iso(k.last_used_at), **_permission_columns(from_json(k.permissions))}
                for k in admin.list_keys(args.env)]
        print_rows(args, headers, rows, plain={"prefix": lambda r: r["prefix"] + "…", "mcp": mcp_cell,
                                               "models": lambda r: "*" if r["models"] is None else r["models"],
                                               "limits": _limits_cell})
    elif args.action == "set-mcp":
        grants = None if args.default else {} if args.none else parse_mcp_specs(args.mcp or [])
        if grants == {} and not args.none:
            raise InvalidParam("give --mcp SERVICE:TOOLS (repeatable), --none or --default")
        row = admin.change_key_permissions(args.key_id, {"mcp": grants})  # its models and limits stay
        print(f"{row.id}: mcp {mcp_cell({'mcp': from_json(row.permissions).mcp_view()})}")
    elif args.action == "set":
        from cbgate.cli.limits import UNSET
        changes = {name: getattr(args, name) for name in ("models", *LIMIT_FIELDS) if getattr(args, name) is not UNSET}
        view = from_json(admin.change_key_permissions(args.key_id, changes, args.env).permissions).model_view()
        if args.json:
            return print_json(view)
        print("setting\tvalue")
        for name, value in view.items():
            shown = ("*" if value is None else ",".join(value) or "(none)") if name == "models" else value
            print(f"{name}\t{'off' if shown is None else for_terminal(str(shown))}")
    elif admin.revoke_key(args.key_id):
        print(f"revoked {args.key_id}")
    else:
        print(f"already revoked {args.key_id} (nothing changed)")


def mcp_cell(row: dict) -> str:
    """A key's MCP list in one cell: `default`, `none`, or `svc:a,b svc2:*`."""
    grants = row["mcp"]
    if grants is None:
        return "default"
    return " ".join(f"{svc}:{tools if tools == '*' else ','.join(tools)}" for svc, tools in grants.items()) or "none"


def _permission_columns(permissions) -> dict:
    view = permissions.model_view()
    return {"mcp": permissions.mcp_view(), "models": view.pop("models"), "limits": view}


def _limits_cell(row: dict) -> str:
    return ",".join(f"{name}={value}" for name, value in row["limits"].items() if value is not None) or "-"


def cmd_model(args) -> None:
    admin = open_admin(args)
    if args.action == "list":
        keyless = keyless_groups(admin, args.env)
        rows = [{"group": group, "model": model,
                 "status": "disabled" if not enabled else "needs key" if group in keyless else "enabled"}
                for group, model, enabled in admin.list_models(args.env, args.group)]
        print_rows(args, ("group", "model", "status"), rows)
    else:
        admin.set_model(args.env, args.group, args.model, args.action == "enable")
        print(f"{args.model} in {args.group}: {args.action}d")


def keyless_groups(admin, env_id: str) -> set[str]:
    """Built-in vendor groups without the env's key: nothing in them can be called yet."""
    return {g.name for g in admin.groups.list_groups(env_id) if g.kind == GroupKind.VENDOR and not g.has_key}


def register(sub, common) -> None:
    _register_env(sub, common)
    _register_key(sub, common)
    _register_model(sub, common)


def _register_env(sub, common) -> None:
    env = add_group(sub, "env", "environments (tenants): each owns keys, model groups, limits and usage")
    create = add_command(env, "create", "create an environment; prints its id",
                         ["cbgate env create", "cbgate env create team-a"], [common])
    create.add_argument("env_id", nargs="?", help="3-48 of a-z, 0-9 and '-', starting with a letter, "
                                                  "e.g. team-a (default: generated)")
    add_json_flag(add_command(env, "list", "list the environments", ["cbgate env list --json"], [common]))
    origins = add_command(env, "set-origins", "set the browser origins allowed to use publishable keys (CORS)",
                          "cbgate env set-origins team-a https://app.example.com,http://localhost:3000",
                          [common])
    origins.add_argument("env_id", help=ENV_HELP)
    origins.add_argument("origins", help="comma-separated, e.g. https://app.example.com (empty: none)")
    for p in env.choices.values():
        p.set_defaults(func=cmd_env)


def _register_key(sub, common) -> None:
    key = add_group(sub, "key", "API keys")
    create = add_command(key, "create", "create an API key; prints it once, on the last line",
                         ["cbgate key create --env team-a --name ci --expires-days 30",
                          "cbgate key create --env team-a --publishable"], [common])
    create.add_argument("--env", required=True, help=ENV_HELP)
    create.add_argument("--expires-days", type=float, metavar="DAYS", help="expire after DAYS days, e.g. 30")
    create.add_argument("--publishable", action="store_true", help="a browser-safe key for chat only")
    create.add_argument("--name", help="a label to recognise it by, e.g. ci")
    create.add_argument("--mcp", action="append", metavar="SERVICE:TOOLS", help=MCP_HELP)
    listing = add_command(key, "list", "list an environment's keys (prefixes only)",
                          "cbgate key list --env team-a --json", [common])
    listing.add_argument("--env", required=True, help=ENV_HELP)
    add_json_flag(listing)
    set_mcp = add_command(key, "set-mcp", "replace a key's MCP allow-list whole (what it leaves out is revoked)",
                          ["cbgate key set-mcp key-0123abcd --mcp 'search:query'",
                           "cbgate key set-mcp key-0123abcd --none", "cbgate key set-mcp key-0123abcd --default"],
                          [common])
    set_mcp.add_argument("key_id", help="the id from `cbgate key list`, e.g. key-0123abcd")
    set_mcp.add_argument("--mcp", action="append", metavar="SERVICE:TOOLS", help=MCP_HELP)
    set_mcp.add_argument("--none", action="store_true", help="no MCP service at all")
    set_mcp.add_argument("--default", action="store_true",
                         help="back to the default: a server key every service of its env, a publishable key none")
    _register_key_set(key, common)
    revoke = add_command(key, "revoke", "revoke a key (again: says it already is, and succeeds)",
                         "cbgate key revoke key-0123abcd", [common])
    revoke.add_argument("key_id", help="the id from `cbgate key list`, e.g. key-0123abcd")
    for p in key.choices.values():
        p.set_defaults(func=cmd_key)


def _models_value(text: str) -> list[str] | None:
    return None if text.strip() == "*" else [m for m in text.split(",") if m.strip()]


def _register_key_set(key, common) -> None:
    from cbgate.cli.limits import UNSET, limit_option  # cli.limits imports this module for ENV_HELP
    change = add_command(key, "set", "a key's model allow-list and its own limits (under its environment's)",
                         ["cbgate key set --env team-a key-0123abcd --models cloudbase/hunyuan-turbos,deepseek/deepseek-chat",
                          "cbgate key set --env team-a key-0123abcd --rpm 60 --concurrency 2 --token-quota 1000000",
                          "cbgate key set --env team-a key-0123abcd --models '*' --rpm off"], [common])
    change.add_argument("--env", required=True, help=ENV_HELP)
    change.add_argument("key_id", help="the id from `cbgate key list`, e.g. key-0123abcd")
    change.add_argument("--models", type=_models_value, default=UNSET, metavar="GROUP/MODEL,...|*",
                        help="the only models the key may call, on every surface; * for every model of its env")
    for option, name, help_text in (("--concurrency", "concurrency", "requests at once"),
                                    ("--rpm", "rpm", "requests per minute"),
                                    ("--token-quota", "token_quota", "tokens in all")):
        change.add_argument(option, dest=name, type=limit_option(name, OWN), default=UNSET, metavar="N|off",
                            help=f"the key's own {help_text}, under its environment's; off: none of its own")
    add_json_flag(change)


def _register_model(sub, common) -> None:
    model = add_group(sub, "model", "the model switch: which models an environment may call")
    listing = add_command(model, "list", "list the models an environment can call, with their switch",
                          ["cbgate model list --env team-a", "cbgate model list --env team-a --group deepseek"],
                          [common])
    listing.add_argument("--env", required=True, help=ENV_HELP)
    listing.add_argument("--group", help="only this group, e.g. cloudbase")
    add_json_flag(listing)
    for action in ("enable", "disable"):
        p = add_command(model, action, f"{action} a model for an environment",
                        f"cbgate model {action} --env team-a --group cloudbase gemma-3-270m", [common])
        p.add_argument("--env", required=True, help=ENV_HELP)
        p.add_argument("--group", required=True, help="the model group, e.g. cloudbase")
        p.add_argument("model", help="the model name, e.g. gemma-3-270m")
    for p in model.choices.values():
        p.set_defaults(func=cmd_model)
