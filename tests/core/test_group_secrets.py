"""The operator key that encrypts group secrets: where it comes from, and clear errors when it is wrong."""
from __future__ import annotations

import pytest

from cbgate.config import load_settings
from cbgate.core.secrets import SecretBox, SecretKeyMissing


def box(tmp_path, **env) -> SecretBox:
    return SecretBox(load_settings(str(tmp_path), env=env))


def test_embedded_default_generates_one_key_file_and_reuses_it(tmp_path):
    token = box(tmp_path).encrypt("sk-plain")
    assert "sk-plain" not in token
    key = (tmp_path / "secret.key").read_bytes()
    assert box(tmp_path).decrypt(token) == "sk-plain"
    assert (tmp_path / "secret.key").read_bytes() == key


def test_postgresql_needs_the_operator_to_set_the_key(tmp_path):
    with pytest.raises(SecretKeyMissing, match="CBGATE_SECRET_KEY"):
        box(tmp_path, CBGATE_DATABASE_URL="postgresql://db/cbgate").encrypt("sk-plain")
    shared = box(tmp_path, CBGATE_DATABASE_URL="postgresql://db/cbgate", CBGATE_SECRET_KEY="one passphrase")
    replica = box(tmp_path / "other", CBGATE_DATABASE_URL="postgresql://db/cbgate", CBGATE_SECRET_KEY="one passphrase")
    assert replica.decrypt(shared.encrypt("sk-plain")) == "sk-plain"
    assert not (tmp_path / "secret.key").exists()


def test_a_changed_key_says_to_set_the_secret_again(tmp_path):
    token = box(tmp_path, CBGATE_SECRET_KEY="first").encrypt("sk-plain")
    with pytest.raises(SecretKeyMissing, match="set-key") as refused:
        box(tmp_path, CBGATE_SECRET_KEY="second").decrypt(token)
    assert refused.value.code == "AI_MODEL_CONFIG_MISSING"
