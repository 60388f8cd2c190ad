"""What an admission limit may be set to, one rule for every way of setting one: an environment's limits
(`cbgate limits set`, `PUT /admin/v1/envs/{env}/limits`) and a key's own (`cbgate key set`, the key's
permissions in the admin API)."""
from __future__ import annotations

from cbgate.errors import InvalidParam
from cbgate.text import MAX_SAFE_INTEGER

OFF_WORD = "off"  # the CLI's word for None


def limit_value(name: str, value: object, none_means: str = "no limit") -> int | None:
    """A whole number from 1 to 2^53 - 1, or None (`none_means`). 0 would refuse every request, which is
    never what was meant: switching an environment off is done with its keys or groups."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not 1 <= value <= MAX_SAFE_INTEGER):
        raise InvalidParam(f"{name} must be a whole number from 1 to {MAX_SAFE_INTEGER}, or off for {none_means} "
                           "(null in the admin API); 0 would refuse every request")
    return value


def limit_from_text(name: str, text: str, none_means: str = "no limit") -> int | None:
    """A limit as typed on a command line: N, or `off` for None."""
    if text.strip().lower() == OFF_WORD:
        return None
    try:
        value = int(text)
    except ValueError:
        raise InvalidParam(f"{name} must be a whole number or {OFF_WORD}, not {text!r}") from None
    return limit_value(name, value, none_means)
