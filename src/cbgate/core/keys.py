"""API keys and operator tokens: 256 random bits behind a prefix that tells the kind; only the SHA-256
digest is kept."""
from __future__ import annotations

import base64
import hashlib
import os

from cbgate.core.key_kinds import KeyKind

KIND_PREFIXES = {KeyKind.SERVER: "cbsk_", KeyKind.PUBLISHABLE: "cbpk_"}
OPERATOR_PREFIX = "cbop_"
SHOWN_PREFIX_LEN = 12


def new_secret(prefix: str) -> str:
    """`prefix` + 256 random bits, URL-safe: every key and token the gateway hands out."""
    return prefix + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def generate_key(kind: KeyKind) -> str:
    return new_secret(KIND_PREFIXES[kind])


def key_digest(plain: str) -> str:
    return hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()


def new_key_id() -> str:
    return "key-" + os.urandom(6).hex()
