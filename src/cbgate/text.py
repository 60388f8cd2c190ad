"""Untrusted text at the edges: what may be stored, and how it is shown on a terminal.

Every string a client or a tenant gives us that reaches storage or a terminal (names, ids, origins, URLs,
model names) goes through `text_problem` first: no NUL (PostgreSQL refuses it, and one refused ledger
record once held up every later one), no control, format or line-separator characters (they forge or
hide terminal lines, and OSC sequences write the operator's clipboard), and a bounded length.
`for_terminal` escapes whatever is printed anyway (older rows, upstream text).
"""
from __future__ import annotations

import re
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
    if value.isascii():  # an ASCII string is printable exactly when it holds no control character (C0, DEL)
        return None if value.isprintable() else "may not contain control characters"
    if any(_bad_char(c) for c in value):
        return "may not contain control, format or separator characters"
    return None


def is_count(value: object) -> bool:
    """A token count as we accept it from anyone: a non-negative integer below 2^53 (not a bool)."""
    return type(value) is int and 0 <= value <= MAX_SAFE_INTEGER


# What can drive a terminal or reorder what it shows: C0 and C1 controls (ESC starts CSI/OSC sequences,
# OSC 52 writes the clipboard, CR overwrites a line), bidi and zero-width format characters, separators.
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2064\u2066-\u206f\ufeff"
_UNSAFE_IN_FIELD = re.compile(f"[\t\n{_UNSAFE}]")
_UNSAFE_IN_LINES = re.compile(f"[{_UNSAFE}]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(value: object, keep_layout: bool = False) -> str:
    """`value` as text that cannot drive a terminal: control and format characters become escapes
    (`\\x1b`). `keep_layout` keeps tabs and newlines (for whole lines of output we wrote ourselves)."""
    text = value if isinstance(value, str) else str(value)
    return (_UNSAFE_IN_LINES if keep_layout else _UNSAFE_IN_FIELD).sub(_escape, text)


def token_count(value: object) -> int:
    """A token count reported by an upstream: an int (or an integral float) from 0 to 2^53 - 1.
    Anything else raises ValueError: a negative count once let a tenant's own upstream undo its quota."""
    if type(value) is float and value.is_integer():
        value = int(value)
    if not is_count(value):
        # the value is not quoted: an upstream may put anything there, its own key included
        raise ValueError(f"a token count must be a whole number from 0 to {MAX_SAFE_INTEGER}, "
                         f"not {type(value).__name__} {'out of range' if isinstance(value, int) else ''}".rstrip())
    return value


SECRET_MASK = "***"
_TOKEN_CHAR = "A-Za-z0-9"
LONG_SECRET = 16  # characters: a random string this long is never part of ordinary words


def mask_secret(text: str, secret: str | None) -> str:
    """`text` with every whole-token occurrence of `secret` masked. A long secret is masked wherever it
    appears; a short one only where it stands as a token of its own, so a key `k` masks "bad key k" but
    leaves "fake internal error" readable (issue 10, finding 10)."""
    if not secret or secret not in text:
        return text
    if len(secret) >= LONG_SECRET:
        return text.replace(secret, SECRET_MASK)
    return re.sub(f"(?<![{_TOKEN_CHAR}]){re.escape(secret)}(?![{_TOKEN_CHAR}])", SECRET_MASK, text)
