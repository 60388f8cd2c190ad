"""What the CLI prints: a tab-separated table under one header line, or with `--json` the same rows as
JSON, so that scripts never have to parse the plain text."""
from __future__ import annotations

import sys
from typing import Any, Iterable, Sequence

import orjson

from cbgate.text import for_terminal

JSON_HELP = "print JSON instead of a table (stable field names, for scripts)"


def add_json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help=JSON_HELP)


def _cell(value: Any) -> str:
    """One table cell; a tab or newline inside a value (an older row) is escaped so it cannot forge a column
    or a line (everything printed also passes through cli.terminal.SafeStream)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return for_terminal(",".join(str(v) for v in value)) or "-"
    return for_terminal(str(value))


def print_json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_rows(args, headers: Sequence[str], rows: Iterable[dict[str, Any]],
               plain: dict[str, Any] | None = None) -> None:
    """`rows` are dicts keyed by `headers`; `plain` overrides how some columns read in the table."""
    rows = list(rows)
    if getattr(args, "json", False):
        return print_json(rows)
    print("\t".join(headers))
    for row in rows:
        shown = {**row, **{k: f(row) for k, f in (plain or {}).items()}}
        print("\t".join(_cell(shown.get(h)) for h in headers))


def print_object(args, obj: dict[str, Any], headers: tuple[str, str] = ("name", "value")) -> None:
    """A show command: one `name<TAB>value` line per field under a header, or one JSON object."""
    if getattr(args, "json", False):
        return print_json(obj)
    print("\t".join(headers))
    for name, value in obj.items():
        print(f"{name}\t{_cell(value)}")
