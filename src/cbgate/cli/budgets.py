"""`cbgate budget set|list|show|delete`: what an environment, or one key of it, may spend per day, per month
(UTC) or in total, in money or in tokens. A request that would pass its budget is refused with 429.

The spend shown here is the ledger's for the current period; the admin API of a serving gateway also shows
what running requests hold (reserved).
"""
from __future__ import annotations

import argparse

from cbgate.cli.commands import add_command, add_group
from cbgate.cli.common import open_admin
from cbgate.cli.output import add_json_flag, print_json, print_object, print_rows
from cbgate.cli.tenants import ENV_HELP
from cbgate.core.budgets import PERIODS

HEADERS = ("id", "scope", "kind", "period", "limit", "currency", "spent", "resets_at")


def _rows(views: list[dict]) -> list[dict]:
    return [{**v, "scope": f"key {v['key_id']}" if v["key_id"] else "env"} for v in views]


def _tokens(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of tokens, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of tokens >= 1, got {text!r}")
    return value


def cmd_budget(args) -> None:
    admin = open_admin(args)
    if args.action == "list":
        views = admin.budgets.list_budgets(args.env)
        return print_json(views) if args.json else print_rows(args, HEADERS, _rows(views))
    if args.action == "set":
        view = admin.budgets.set_budget(args.env, args.key, args.period, args.amount, args.tokens, args.currency)
    elif args.action == "show":
        view = admin.budgets.get_budget(args.env, args.budget_id)
    else:
        view = admin.budgets.delete_budget(args.env, args.budget_id)
    if args.json:
        return print_json(view)
    print_object(args, view)


def register(sub, common) -> None:
    budget = add_group(sub, "budget", "spending caps of an environment or a key: money or tokens per day, month "
                                      "or in total")
    change = add_command(budget, "set", "set a budget; setting the same key and period again replaces it",
                         ["cbgate budget set --env team-a --amount 12.50 --currency CNY --period month",
                          "cbgate budget set --env team-a --key key-0123abcd --tokens 100000 --period day"], [common])
    change.add_argument("--env", required=True, help=ENV_HELP)
    change.add_argument("--key", metavar="KEY_ID", help="only this API key's requests (default: the whole environment)")
    amount = change.add_mutually_exclusive_group(required=True)
    amount.add_argument("--amount", metavar="AMOUNT", help="money, e.g. 12.50 (at most 6 decimals)")
    amount.add_argument("--tokens", metavar="N", type=_tokens, help="tokens (prompt and completion), e.g. 100000")
    change.add_argument("--currency", metavar="CODE", help="with --amount: three letters, e.g. CNY (default CNY); "
                                                        "only requests priced in it count")
    change.add_argument("--period", required=True, choices=PERIODS,
                        help="day or month (UTC; the budget resets at its start) or total (never resets)")
    add_json_flag(change)
    listing = add_command(budget, "list", "the environment's budgets with the current period's spend",
                          "cbgate budget list --env team-a --json", [common])
    listing.add_argument("--env", required=True, help=ENV_HELP)
    add_json_flag(listing)
    for name, text in (("show", "one budget with its current period's spend"), ("delete", "delete a budget")):
        one = add_command(budget, name, text, f"cbgate budget {name} --env team-a bud-0123abcd", [common])
        one.add_argument("--env", required=True, help=ENV_HELP)
        one.add_argument("budget_id", help="the id from `cbgate budget list`, e.g. bud-0123abcd")
        add_json_flag(one)
    for p in budget.choices.values():
        p.set_defaults(func=cmd_budget)
