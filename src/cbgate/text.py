"""Untrusted text at the edges: what may be stored, and how it is shown on a terminal.

Every string a client or a tenant gives us that reaches storage or a terminal (names, ids, origins, URLs,
model names) goes through `text_problem` first: no NUL (PostgreSQL refuses it, and one refused ledger
record once held up every later one), no control, format or line-separator characters (they forge or
hide terminal lines, and OSC sequences write the operator's clipboard), and a bounded length.
`for_terminal` escapes whatever is printed anyway (older rows, upstream text).
"""
from __future__ import annotations

import unicodedata

# Cc: C0/C1 controls (NUL, ESC, CR, LF, BEL, DEL...); Cf: format (bidi overrides, zero-width);
# Zl/Zp: line and paragraph separators; Cs: lone surrogates (not encodable); Co/Cn: private use, unassigned.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
MAX_SAFE_INTEGER = 2 ** 53 - 1  # the largest count every JSON reader (JavaScript included) holds exactly


def _bad_char(c: str) -> bool:
    return unicodedata.category(c) in _REFUSED_CATEGORIES


def text_problem(value: object, max_length: int) -> str | None:
    """Why `value` may not be stored as a name-like string, or None when it may."""
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    if value.isascii():
        if any(c < " " or c == "\x7f" for c in value):
            return "may not contain control characters"
        return None
    if any(_bad_char(c) for c in value):
        return "may not contain control, format or separator characters"
    return None


def is_count(value: object) -> bool:
    """A token count as we accept it from anyone: a non-negative integer below 2^53 (not a bool)."""
    return type(value) is int and 0 <= value <= MAX_SAFE_INTEGER


def for_terminal(value: object) -> str:
    """`value` as text that cannot drive a terminal: control and format characters become escapes."""
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and not any(c < " " or c == "\x7f" for c in text):
        return text
    out = []
    for c in text:
        if (c < " " or c == "\x7f") or (not c.isascii() and _bad_char(c)):
            code = ord(c)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(c)
    return "".join(out)


def token_count(value: object) -> int:
    """A token count reported by an upstream: an int (or an integral float) from 0 to 2^53 - 1.
    Anything else raises ValueError: a negative count once let a tenant's own upstream undo its quota."""
    if type(value) is float and value.is_integer():
        value = int(value)
    if not is_count(value):
        raise ValueError(f"a token count must be a whole number from 0 to {MAX_SAFE_INTEGER}, "
                         f"got {str(value)[:40]!r}")
    return value
