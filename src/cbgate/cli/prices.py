"""`cbgate price set|list|delete`: what each model of an environment's groups costs, per 1,000 tokens.

The `cloudbase` catalog's prices come from the config file ([models.price]); an environment's own price
for a model, set here, wins over it. A model with neither is unpriced: its requests cost nothing.
"""
from __future__ import annotations

from cbgate.cli.commands import add_command, add_group
from cbgate.cli.common import open_admin
from cbgate.cli.output import add_json_flag, print_json, print_rows
from cbgate.cli.tenants import ENV_HELP

HEADERS = ("group", "model", "tier", "input", "output", "cache", "currency", "source")
PRICE_HELP = "currency units per 1,000 tokens, e.g. 0.0008 (at most 6 decimals)"
TIER_HELP = "prompt tokens FROM-TO this price applies to, e.g. 0-16k, 16k-128k, 128k- (default: all, uniform)"


def price_rows(views: list[dict]) -> list[dict]:
    """One table row per tier; an unpriced model is one row that says so."""
    rows = []
    for view in views:
        where = {"group": view["group"], "model": view["model"], "currency": view["currency"],
                 "source": view["source"] or "unpriced"}
        if not view["tiers"]:
            rows.append({**where, "tier": "-", "input": "-", "output": "-", "cache": "-"})
        for tier in view["tiers"]:
            rows.append({**where, "tier": tier["tier"] if view["type"] == "Tiered" else "all",
                         "input": tier["input"], "output": tier["output"],
                         "cache": tier["cache"] if tier["cache"] is not None else "(input)"})
    return rows


def cmd_price(args) -> None:
    admin = open_admin(args)
    if args.action == "list":
        views = admin.prices.list_prices(args.env, args.group)
        return print_json(views) if args.json else print_rows(args, HEADERS, price_rows(views))
    if args.action == "set":
        view = admin.prices.set_price(args.env, args.group, args.model, args.input, args.output, args.cache,
                                      args.tier, args.currency)
    else:
        view = admin.prices.delete_price(args.env, args.group, args.model, args.tier)
    if args.json:
        return print_json(view)
    print_rows(args, HEADERS, price_rows([view]))


def _where(parser, common_help: str = "") -> None:
    parser.add_argument("--env", required=True, help=ENV_HELP)
    parser.add_argument("--group", required=True, help="the model group, e.g. cloudbase or deepseek")
    parser.add_argument("--model", required=True, help="the model, e.g. deepseek-chat")
    parser.add_argument("--tier", metavar="FROM-TO", help=common_help or TIER_HELP)


def register(sub, common) -> None:
    price = add_group(sub, "price", "model prices per 1,000 tokens (uniform or tiered by prompt tokens)")
    change = add_command(price, "set", "set a model's price, or one tier of it",
                         ["cbgate price set --env team-a --group deepseek --model deepseek-chat --input 0.002 "
                          "--output 0.008 --cache 0.0005",
                          "cbgate price set --env team-a --group cloudbase --model hunyuan-turbos --tier 0-32k "
                          "--input 0.0008 --output 0.002"], [common])
    _where(change)
    change.add_argument("--input", required=True, metavar="P", help=f"uncached prompt tokens: {PRICE_HELP}")
    change.add_argument("--output", required=True, metavar="P", help=f"completion tokens: {PRICE_HELP}")
    change.add_argument("--cache", metavar="P", help=f"prompt tokens read from a cache: {PRICE_HELP} "
                                                     "(default: the input price)")
    change.add_argument("--currency", metavar="CODE", help="three letters, e.g. CNY (default: the model's, or CNY)")
    add_json_flag(change)
    listing = add_command(price, "list", "every model the environment can call, with its price or `unpriced`",
                          ["cbgate price list --env team-a", "cbgate price list --env team-a --group cloudbase --json"],
                          [common])
    listing.add_argument("--env", required=True, help=ENV_HELP)
    listing.add_argument("--group", help="only this group's models")
    add_json_flag(listing)
    remove = add_command(price, "delete", "delete the environment's price of a model (or one tier of it)",
                         "cbgate price delete --env team-a --group deepseek --model deepseek-chat", [common])
    _where(remove, "only this tier, e.g. 16k-128k (default: the whole price)")
    add_json_flag(remove)
    for p in price.choices.values():
        p.set_defaults(func=cmd_price)
