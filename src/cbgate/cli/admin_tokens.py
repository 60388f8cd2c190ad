"""`cbgate admin token create|list|revoke`: operator tokens for the admin API and the console."""
from __future__ import annotations

import sys

from cbgate.cli.common import open_admin, when


def cmd_token(args) -> None:
    admin = open_admin(args)
    if args.action == "create":
        row, plain = admin.create_operator_token(args.name or "")
        print(f"created operator token {row.id}; it sees every environment and is shown only this once:",
              file=sys.stderr)
        print(plain)
    elif args.action == "list":
        print("id\tprefix\tname\tcreated\trevoked")
        for t in admin.list_operator_tokens():
            print(f"{t.id}\t{t.prefix}…\t{t.name or '-'}\t{when(t.created_at)}\t{when(t.revoked_at)}")
    else:
        admin.revoke_operator_token(args.token_id)
        print(f"revoked {args.token_id}")


def register(sub, common) -> None:
    admin = sub.add_parser("admin", help="the admin plane").add_subparsers(dest="admin_command", required=True)
    token = admin.add_parser("token", help="operator tokens (see every environment)")
    actions = token.add_subparsers(dest="action", required=True)
    actions.add_parser("create", parents=[common]).add_argument("--name")
    actions.add_parser("list", parents=[common])
    actions.add_parser("revoke", parents=[common]).add_argument("token_id")
    for p in actions.choices.values():
        p.set_defaults(func=cmd_token)
