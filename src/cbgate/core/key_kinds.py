"""The kinds of API key, and the one place that says what a publishable key may do.

A server key has every right in its environment. A publishable key is shipped inside web pages, so anyone
who opens the page holds it. It may:
- call the model surfaces: chat completions (and @cloudbase/ai's paths), Anthropic Messages, Responses
  (answers that are never stored), the model list;
- list, read (without their configuration) and run its environment's agents;
- call an MCP service's tools only where its own allow-list names them;
and only from the browser origins its environment lists, under limits of their own that all of the env's
publishable keys share (`limits/base.publishable_limits`). Every `Right` below is refused to it: no image
generation, no stored responses, no agent changes, no MCP service by default, never the admin API.
"""
from __future__ import annotations

from enum import Enum, StrEnum

from cbgate.errors import InvalidParam, PermissionDenied


class KeyKind(StrEnum):
    """What `env_keys.kind` stores; the key's visible prefix tells the kinds apart (core/keys.py)."""
    SERVER = "server"
    PUBLISHABLE = "publishable"

    @classmethod
    def parse(cls, value: object) -> KeyKind:
        """A kind as the admin API and the CLI take it."""
        try:
            return cls(value)
        except ValueError:
            raise InvalidParam(f"kind must be {' or '.join(cls)}") from None


    @classmethod
    def stored(cls, value: str) -> KeyKind:
        """A key row's kind; one this version does not know gets the fewest rights (fail closed, not a 500)."""
        return _STORED.get(value, cls.PUBLISHABLE)


_STORED = {kind.value: kind for kind in KeyKind}


class Right(Enum):
    """What a server key may do and a publishable key may not; the value is the refusal's reason (`{}`: what
    was asked, given to `require`)."""
    ADMIN_API = "a publishable key may not use the admin API"
    GENERATE_IMAGES = "image generation needs a server API key; publishable keys are for chat"
    STORED_RESPONSES = ("stored responses need a server API key; publishable keys may create responses only, "
                        "which are not stored")
    CHANGE_AGENTS = "{} needs a server API key; a publishable key may only list, read and run agents"
    SEE_AGENT_CONFIG = "an agent's configuration is shown to server keys only"
    MCP_WITHOUT_GRANT = "a publishable key may use an MCP service only where its allow-list names it"
    ANY_ORIGIN = "this environment does not allow publishable keys from origin {}"


RIGHTS: dict[KeyKind, frozenset[Right]] = {KeyKind.SERVER: frozenset(Right), KeyKind.PUBLISHABLE: frozenset()}


def may(kind: KeyKind, right: Right) -> bool:
    """THE decision for what a key's kind allows: every check of a key's kind asks here."""
    return right in RIGHTS[kind]


def require(kind: KeyKind, right: Right, asked: str = "") -> None:
    """Refuse (403) what `kind` may not do."""
    if not may(kind, right):
        raise PermissionDenied(right.value.format(asked))


def limit_scope(env_id: str, kind: KeyKind) -> str:
    """The limiter scope a key's requests count in: its environment's, or the share its env's publishable
    keys have together (a page's visitors cannot use up what the env's servers need)."""
    return env_id if kind is KeyKind.SERVER else f"{env_id}/{kind.value}"
