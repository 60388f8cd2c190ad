"""Everything the CLI prints goes through `SafeStream`: names, URLs and messages come from tenants (the
admin API) and upstreams, and a raw ESC or OSC sequence in them would drive the operator's terminal (OSC
52 writes the clipboard; CR and CSI sequences forge or hide lines). Control and format characters are
printed as escapes; the tabs and newlines of our own layout stay. Input checks refuse such names today;
this also covers rows stored before them and text that is not ours (upstream error messages)."""
from __future__ import annotations

import sys
from typing import TextIO

from cbgate.text import for_terminal


class SafeStream:
    def __init__(self, inner: TextIO):
        self.inner = inner

    def write(self, text: str) -> int:
        return self.inner.write(for_terminal(text, keep_layout=True))

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def isatty(self) -> bool:
        return False  # so nothing (uvicorn's log colours) writes escape sequences meant to be passed through

    def __getattr__(self, name: str):  # flush, fileno, isatty, encoding... as the real stream has them
        return getattr(self.inner, name)


def guard_output() -> None:
    """Route stdout and stderr through SafeStream (idempotent)."""
    if not isinstance(sys.stdout, SafeStream):
        sys.stdout = SafeStream(sys.stdout)
    if not isinstance(sys.stderr, SafeStream):
        sys.stderr = SafeStream(sys.stderr)
