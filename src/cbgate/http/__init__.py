"""The HTTP edge: the only layer that knows HTTP, headers and SSE framing."""
