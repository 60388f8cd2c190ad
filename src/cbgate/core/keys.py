"""API keys: 256 random bits behind a prefix that tells the kind; only the SHA-256 digest is kept."""
from __future__ import annotations

import base64
import hashlib
import os

KIND_PREFIXES = {"server": "cbsk_", "publishable": "cbpk_"}
SHOWN_PREFIX_LEN = 12


def generate_key(kind: str) -> str:
    secret = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    return KIND_PREFIXES[kind] + secret


def key_digest(plain: str) -> str:
    return hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()


def new_key_id() -> str:
    return "key-" + os.urandom(6).hex()
