"""The surface contract is a contract, not stubs: a surface that does not say how it parses and streams
cannot be made (rather than failing on its first request)."""
from __future__ import annotations

import pytest

from cbgate.protocol.surface import Surface


def test_a_surface_without_parse_or_stream_cannot_be_made():
    class ParsesOnly(Surface):
        def parse(self, body):
            return body

    with pytest.raises(TypeError, match="stream"):
        ParsesOnly()

