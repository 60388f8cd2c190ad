"""The `cbgate` command. Scripts depend on its arguments and on the last line of what it prints."""
from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

from cbgate.cli import admin_tokens, agents, backup, budgets, doctor, groups, limits, mcp, prices, serve, tenants, usage
from cbgate.cli.commands import add_command
from cbgate.cli.common import DATA_HELP, DataDirMissing, data_dir_option
from cbgate.cli.terminal import guard_output
from cbgate.config import ConfigError
from cbgate.errors import CloudBaseError
from cbgate.providers.local.command import EngineSetupError
from cbgate.providers.local.source import ModelSourceError

COMMANDS = [serve, tenants, groups, agents, limits, prices, budgets, mcp, usage, admin_tokens, doctor, backup]
GETTING_STARTED = """getting started:
  cbgate serve                         start the gateway; the first start prints a key and a curl to try
  cbgate admin token create            a token for the web console at http://127.0.0.1:8080/console
  cbgate <command> --help              what a command does, with examples
  cbgate completion bash               shell completion (see `cbgate completion --help`)"""


def package_version() -> str:
    try:
        return version("cbgate")
    except PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cbgate", description="A self-hosted CloudBase AI model API gateway.",
                                     epilog=GETTING_STARTED, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cbgate {package_version()}",
                        help="print the version and exit")
    parser.add_argument("--data-dir", metavar="DIR", help=DATA_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    common = data_dir_option()
    for module in COMMANDS:
        module.register(sub, common)
    completion = add_command(sub, "completion", "print a shell completion script (bash, zsh or tcsh)",
                             ["cbgate completion bash > ~/.local/share/bash-completion/completions/cbgate",
                              "cbgate completion zsh > \"${fpath[1]}/_cbgate\""])
    completion.add_argument("shell", choices=("bash", "zsh", "tcsh"), help="your shell, e.g. bash")
    completion.set_defaults(func=lambda args: print(_completion_script(args.shell)))
    return parser


def _completion_script(shell: str) -> str:
    import shtab  # maintained completion generator; only loaded for this command

    return shtab.complete(build_parser(), shell=shell)


def main(argv: list[str] | None = None) -> None:
    guard_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `cbgate` alone: help, not an error
        parser.print_help()
        return
    args.data_dir = getattr(args, "sub_data_dir", None) or args.data_dir
    try:
        args.func(args)
    except (CloudBaseError, ConfigError, ModelSourceError, DataDirMissing, EngineSetupError) as exc:
        print(f"cbgate: error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # `cbgate ... | head`: the reader has what it wanted
        sys.stderr.close()
        sys.exit(0)

