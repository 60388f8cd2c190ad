"""`cbgate limits set|show --env ENV`: an environment's admission limits."""
from __future__ import annotations

import argparse

from cbgate.cli.common import open_admin

LIMIT_OPTIONS = (("--concurrency", "concurrency"), ("--rpm", "rpm"), ("--tpm", "tpm"),
                 ("--token-quota", "token_quota"))
UNSET = object()  # an option not given: that limit stays as it is (argparse would parse a string default)


def limit_value(text: str) -> int | None:
    """N (a whole number >= 0) or `off` (no limit)."""
    if text.lower() == "off":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or off, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 or off, got {text!r}")
    return value


def cmd_limits(args) -> None:
    admin = open_admin(args)
    if args.action == "set":
        changes = {name: getattr(args, name) for _, name in LIMIT_OPTIONS if getattr(args, name) is not UNSET}
        limits = admin.set_env_limits(args.env, changes)
    else:
        limits = admin.env_limits(args.env)
    for name, value in limits.items():
        print(f"{name}\t{'off' if value is None else value}")


def register(sub, common) -> None:
    limits = sub.add_parser("limits", help="admission limits of an environment").add_subparsers(
        dest="action", required=True)
    change = limits.add_parser("set", parents=[common], help="change some limits (N or off); the rest stay")
    change.add_argument("--env", required=True)
    for option, name in LIMIT_OPTIONS:
        change.add_argument(option, dest=name, type=limit_value, default=UNSET, metavar="N|off")
    limits.add_parser("show", parents=[common]).add_argument("--env", required=True)
    for p in limits.choices.values():
        p.set_defaults(func=cmd_limits)
