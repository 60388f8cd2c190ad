"""`cbgate usage`: what an environment used, from the ledger (scripts read `--json`)."""
from __future__ import annotations

import re
import sys
import time
from datetime import datetime, timezone

import orjson

from cbgate.cli.commands import add_command
from cbgate.cli.common import open_admin
from cbgate.cli.tenants import ENV_HELP
from cbgate.errors import InvalidParam
from cbgate.pricing import format_micros
from cbgate.store.usage import GROUPINGS
from cbgate.text import for_terminal

RELATIVE = re.compile(r"\A([0-9]+)([hd])\Z")


def parse_since(value: str | None, now: float | None = None, flag: str = "--since") -> float | None:
    """`2026-11-01`, `2026-11-01T12:00` (UTC unless an offset is given), or `24h` / `7d` ago."""
    if value is None:
        return None
    match = RELATIVE.match(value.strip())
    if match:
        hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1)
        return (now if now is not None else time.time()) - hours * 3600
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidParam(f"{flag} {value!r}: use a date (2026-11-01), a time (2026-11-01T12:00) "
                           "or a span (24h, 7d)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def cost_text(counts: dict) -> str:
    """`CNY 0.012345` (one per currency, exact), `unpriced` when no request had a price, `-` for none."""
    costs = counts.get("cost_micros") or {}  # MCP tool calls (--by mcp) carry no cost
    shown = [f"{currency} {format_micros(micros)}" for currency, micros in sorted(costs.items())]
    if counts.get("unpriced_requests") and not shown:
        return "unpriced"
    return ", ".join(shown) or "-"


def _table(summary: dict, by: str | None) -> str:
    head = ["requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens"]
    lines = []
    if by is not None:
        labels = ["service", "tool", "outcome"] if by == "mcp" else [by]  # MCP rows: one per service, tool, outcome
        lines.append("\t".join([*labels, *head, "cost"]))
        lines += ["\t".join([*(for_terminal(str(row[c])) if row[c] is not None else "-" for c in [*labels, *head]),
                             cost_text(row)]) for row in summary["rows"]]
    else:
        lines.append("\t".join(["scope", *head, "cost"]))  # the totals line is labelled too
    lines.append("\t".join(["total", *(str(summary[c]) for c in head), cost_text(summary)]))
    return "\n".join(lines)


def cmd_usage(args) -> None:
    admin = open_admin(args)
    summary = admin.usage_summary(args.env, parse_since(args.since), args.by,
                                  until=parse_since(args.until, flag="--until"), key_id=args.key)
    if args.json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    else:
        print(_table(summary, args.by))


def register(sub, common) -> None:
    usage = add_command(sub, "usage", "tokens, requests and cost of an environment, from the usage ledger",
                        ["cbgate usage --env team-a --since 7d", "cbgate usage --env team-a --by model --json",
                         "cbgate usage --env team-a --by key --since 2026-12-01",
                         "cbgate usage --env team-a --key KEY_ID --by model --since 2026-12-01 --until 2027-01-01"],
                        [common])
    usage.add_argument("--env", required=True, help=ENV_HELP)
    usage.add_argument("--since", metavar="DATE",
                       help="from this date, time (UTC) or span ago, e.g. 2026-11-01, 24h, 7d")
    usage.add_argument("--until", metavar="DATE",
                       help="up to (not including) this date, time (UTC) or span ago, e.g. 2027-01-01")
    usage.add_argument("--key", metavar="KEY_ID", help="only this API key's requests (its id, from `cbgate key list`)")
    usage.add_argument("--by", choices=GROUPINGS,
                       help="one row per model, key, group, day or surface (chat, messages, responses, images, "
                            "mcp, agent), mcp (tool calls by service, tool and outcome) or agent (agent runs only), "
                            "e.g. --by day")
    usage.add_argument("--json", action="store_true",
                       help="one JSON object with `total_tokens`, `cost_micros` ({currency: millionths}) and `rows`")
    usage.set_defaults(func=cmd_usage)
