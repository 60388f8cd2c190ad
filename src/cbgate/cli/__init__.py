"""The `cbgate` command. Scripts depend on its arguments and on the last line of what it prints."""
from __future__ import annotations

import argparse
import sys

from cbgate.cli import admin_tokens, groups, limits, serve, tenants, usage
from cbgate.cli.common import DATA_HELP, data_dir_option
from cbgate.config import ConfigError
from cbgate.errors import CloudBaseError
from cbgate.providers.local.source import ModelSourceError

COMMANDS = [serve, tenants, usage, admin_tokens, limits, groups]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cbgate", description="A self-hosted CloudBase AI model API gateway.")
    parser.add_argument("--data-dir", metavar="DIR", help=DATA_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    common = data_dir_option()
    for module in COMMANDS:
        module.register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.data_dir = args.sub_data_dir or args.data_dir
    try:
        args.func(args)
    except (CloudBaseError, ConfigError, ModelSourceError) as exc:
        print(f"cbgate: error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
