"""`cbgate admin token create|list|revoke`: operator tokens for the admin API and the console."""
from __future__ import annotations

import sys

from cbgate.cli.commands import add_command, add_group
from cbgate.cli.common import iso, open_admin
from cbgate.cli.output import add_json_flag, print_rows


def cmd_token(args) -> None:
    admin = open_admin(args)
    if args.action == "create":
        row, plain = admin.create_operator_token(args.name or "")
        print(f"created operator token {row.id}; it sees every environment and is shown only this once:",
              file=sys.stderr)
        print(plain)
    elif args.action == "list":
        rows = [{"id": t.id, "prefix": t.prefix, "name": t.name or None, "created": iso(t.created_at),
                 "revoked": iso(t.revoked_at)} for t in admin.list_operator_tokens()]
        print_rows(args, ("id", "prefix", "name", "created", "revoked"), rows,
                   plain={"prefix": lambda r: r["prefix"] + "…"})
    elif admin.revoke_operator_token(args.token_id):
        print(f"revoked {args.token_id}")
    else:
        print(f"already revoked {args.token_id} (nothing changed)")


def register(sub, common) -> None:
    admin = add_group(sub, "admin", "the admin plane (admin API and console)", dest="admin_command")
    token = add_group(admin, "token", "operator tokens: they see every environment")
    create = add_command(token, "create", "create an operator token for the console and admin API; prints it once",
                         "cbgate admin token create --name alice", [common])
    create.add_argument("--name", help="a label to recognise it by, e.g. alice")
    add_json_flag(add_command(token, "list", "list operator tokens (prefixes only)",
                              "cbgate admin token list --json", [common]))
    revoke = add_command(token, "revoke", "revoke an operator token (again: says it already is, and succeeds)",
                         "cbgate admin token revoke op-0123abcd", [common])
    revoke.add_argument("token_id", help="the id from `cbgate admin token list`, e.g. op-0123abcd")
    for p in token.choices.values():
        p.set_defaults(func=cmd_token)
