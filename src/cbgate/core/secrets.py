"""Group secrets at rest: encrypted with the operator's key (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from CBGATE_SECRET_KEY; with the embedded SQLite default it is otherwise generated once
into <data_dir>/secret.key (mode 0600). PostgreSQL means several replicas on several machines, which
must all share one key, so there the operator has to set CBGATE_SECRET_KEY.
"""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from cbgate.config import Settings
from cbgate.errors import ModelConfigMissing

KEY_FILE = "secret.key"


class SecretKeyMissing(ModelConfigMissing):
    """No operator key to encrypt or decrypt group secrets with."""


def _fernet_key(text: str) -> bytes:
    """Accept a Fernet key as is; derive one from any other passphrase (operators paste what they have)."""
    raw = text.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except ValueError:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


def _file_key(path: Path, create: bool) -> bytes | None:
    if path.exists():
        return path.read_bytes().strip()
    if not create:
        return None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, even briefly
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class SecretBox:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._fernet: Fernet | None = None

    def _load(self, create: bool) -> Fernet | None:
        if self._fernet is None:
            configured = self.settings.env_vars.get("CBGATE_SECRET_KEY")
            if configured:
                self._fernet = Fernet(_fernet_key(configured))
            elif not self.settings.database_url.startswith(("postgres", "postgresql")):
                key = _file_key(self.settings.data_dir / KEY_FILE, create)
                self._fernet = Fernet(key) if key else None
            else:
                raise SecretKeyMissing(
                    "group secrets are encrypted with the operator key, and with PostgreSQL every replica must "
                    "share it: set CBGATE_SECRET_KEY (e.g. the output of `python -c \"from cryptography.fernet "
                    "import Fernet; print(Fernet.generate_key().decode())\"`) on every replica and CLI")
        return self._fernet

    def encrypt(self, plain: str) -> str:
        return self._load(create=True).encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        fernet = self._load(create=False)
        if fernet is None:
            raise SecretKeyMissing(f"the operator key ({self.settings.data_dir / KEY_FILE}) is missing, so "
                                   "this group's secret cannot be read; set the key again with `cbgate group set-key`")
        try:
            return fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyMissing("this group's secret was stored with another operator key (CBGATE_SECRET_KEY "
                                   "changed?); set it again with `cbgate group set-key`") from None
