"""Building the `cbgate` subcommands: each one says what it does and shows an example in its --help."""
from __future__ import annotations

import argparse


def add_command(sub, name: str, summary: str, examples: str | list[str], parents=(), **kwargs):
    """A subcommand whose --help ends with runnable examples (`cbgate ...` lines)."""
    lines = [examples] if isinstance(examples, str) else examples
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in lines)
    return sub.add_parser(name, help=summary, description=summary, epilog=epilog, parents=list(parents),
                          formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)


def add_group(sub, name: str, summary: str, dest: str = "action"):
    """A command with subcommands of its own (`cbgate key create|list|revoke`)."""
    parser = sub.add_parser(name, help=summary, description=summary)
    return parser.add_subparsers(dest=dest, required=True, metavar="ACTION", title="actions")
