"""Read a few metadata strings from a GGUF file's header (the model family, its chat template), without
loading the model: the gateway decides how llama-server should format chats before starting it."""
from __future__ import annotations

import mmap
import struct
from pathlib import Path

_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class GGUFError(ValueError):
    """The file is not a GGUF model this reader understands."""


def read_strings(path: Path, wanted: set[str]) -> dict[str, str]:
    """The string values of the `wanted` keys that the file's metadata holds."""
    with path.open("rb") as handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise GGUFError(f"{path} is empty, not a GGUF model") from None
        with data:
            return _scan(data, wanted, path)


def _scan(data: mmap.mmap, wanted: set[str], path: Path) -> dict[str, str]:
    if data[:4] != b"GGUF" or len(data) < 24:
        raise GGUFError(f"{path} is not a GGUF model file")
    version, _tensors, count = struct.unpack_from("<IQQ", data, 4)
    if version < 2:
        raise GGUFError(f"{path} uses GGUF version {version}, which is too old")
    found: dict[str, str] = {}
    offset = 24
    try:
        for _ in range(count):
            key, offset = _string(data, offset)
            (kind,) = struct.unpack_from("<I", data, offset)
            offset += 4
            if kind == _STRING and key in wanted:
                found[key], offset = _string(data, offset)
                if len(found) == len(wanted):
                    break
            else:
                offset = _skip(data, offset, kind)
    except (struct.error, KeyError, UnicodeDecodeError):
        raise GGUFError(f"{path} has a damaged GGUF header") from None
    return found


def _string(data: mmap.mmap, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", data, offset)
    start = offset + 8
    if start + length > len(data):
        raise struct.error("string past the end of the file")
    return data[start:start + length].decode("utf-8"), start + length


def _skip(data: mmap.mmap, offset: int, kind: int) -> int:
    if kind == _STRING:
        (length,) = struct.unpack_from("<Q", data, offset)
        return offset + 8 + length
    if kind == _ARRAY:
        item_kind, items = struct.unpack_from("<IQ", data, offset)
        offset += 12
        if item_kind in _SCALAR_SIZES:
            return offset + items * _SCALAR_SIZES[item_kind]
        for _ in range(items):  # arrays of strings (the vocabulary) or of arrays
            offset = _skip(data, offset, item_kind)
        return offset
    return offset + _SCALAR_SIZES[kind]


def write_minimal(path: Path, strings: dict[str, str]) -> Path:
    """A GGUF file holding only string metadata and no tensors (for tests and fakes of the engine)."""
    body = b"".join(struct.pack("<Q", len(k.encode())) + k.encode() + struct.pack("<IQ", _STRING, len(v.encode()))
                    + v.encode() for k, v in strings.items())
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(strings)) + body)
    return path
