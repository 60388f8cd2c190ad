"""Secrets for the CLI come from a prompt, stdin or a file, so they stay out of shell history and `ps`."""
from __future__ import annotations

import getpass
import sys
from pathlib import Path

from cbgate.errors import InvalidParam

FILE_HELP = "read the secret from this file (first line; `-` reads it from stdin)"


def read_secret(prompt: str, *, from_file: str | None = None, given: str | None = None,
                required: bool = True) -> str | None:
    """The secret from `--…-file` (or stdin with `-`), else the value still accepted on the command line
    (with a warning), else a hidden prompt on a terminal, else one line of piped stdin."""
    if from_file is not None:
        text = sys.stdin.read() if from_file == "-" else _read_file(from_file)
        return _first_line(text, from_file)
    if given is not None:
        print("cbgate: warning: a secret on the command line lands in shell history and `ps`; "
              "prefer the prompt, stdin or a file", file=sys.stderr)
        return given
    if not required:
        return None
    if sys.stdin.isatty():
        value = getpass.getpass(f"{prompt}: ")
    else:
        value = sys.stdin.readline()
    value = value.strip()
    if not value:
        raise InvalidParam("no secret given: type it at the prompt, pipe it to stdin, or pass a file")
    return value


def _read_file(path: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except OSError as exc:
        raise InvalidParam(f"cannot read the secret from {path}: {exc.strerror or exc}") from None


def _first_line(text: str, source: str) -> str:
    value = (text.strip().splitlines() or [""])[0].strip()
    if not value:
        raise InvalidParam(f"{'stdin' if source == '-' else source} holds no secret")
    return value
