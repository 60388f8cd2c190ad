"""`cbgate limits set|show --env ENV`: an environment's admission limits."""
from __future__ import annotations

import argparse

from cbgate.cli.commands import add_command, add_group
from cbgate.cli.common import open_admin
from cbgate.cli.output import add_json_flag, print_json
from cbgate.cli.tenants import ENV_HELP
from cbgate.errors import InvalidParam
from cbgate.limits.values import limit_from_text

LIMIT_OPTIONS = (("--concurrency", "concurrency", "requests served at once, e.g. 5"),
                 ("--rpm", "rpm", "requests per minute, e.g. 600"),
                 ("--tpm", "tpm", "tokens per minute, e.g. 100000"),
                 ("--token-quota", "token_quota", "total tokens allowed, e.g. 5000000"))
UNSET = object()  # an option not given: that limit stays as it is (argparse would parse a string default)


def limit_option(name: str, none_means: str = "no limit"):
    """An option's type: N or `off`, checked by the one rule (limits/values.py) as the command line is read."""
    def parse(text: str) -> int | None:
        try:
            return limit_from_text(name, text, none_means)
        except InvalidParam as exc:
            raise argparse.ArgumentTypeError(exc.message) from None
    return parse


def cmd_limits(args) -> None:
    admin = open_admin(args)
    if args.action == "set":
        changes = {name: getattr(args, name) for _, name, _ in LIMIT_OPTIONS if getattr(args, name) is not UNSET}
        limits = admin.set_env_limits(args.env, changes)
    else:
        limits = admin.env_limits(args.env)
    if args.json:
        return print_json(limits)  # null: no limit
    print("limit\tvalue")
    for name, value in limits.items():
        print(f"{name}\t{'off' if value is None else value}")


def register(sub, common) -> None:
    limits = add_group(sub, "limits", "admission limits of an environment")
    change = add_command(limits, "set", "change some limits (N or off); the others stay as they are",
                         ["cbgate limits set --env team-a --concurrency 10 --rpm 600",
                          "cbgate limits set --env team-a --token-quota off"], [common])
    change.add_argument("--env", required=True, help=ENV_HELP)
    for option, name, help_text in LIMIT_OPTIONS:
        change.add_argument(option, dest=name, type=limit_option(name), default=UNSET, metavar="N|off",
                            help=f"{help_text}; off: no limit")
    add_json_flag(change)
    show = add_command(limits, "show", "show the limits in force (off: no limit)",
                       "cbgate limits show --env team-a --json", [common])
    show.add_argument("--env", required=True, help=ENV_HELP)
    add_json_flag(show)
    for p in limits.choices.values():
        p.set_defaults(func=cmd_limits)
