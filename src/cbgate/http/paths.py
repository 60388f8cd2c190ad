"""Hints for a path that does not exist, so that a client pointed at the wrong base URL learns the right one."""
from __future__ import annotations

import difflib

GROUP_TAILS = ("chat/completions", "v1/chat/completions", "models", "v1/models", "v1/messages", "responses",
               "v1/responses", "images/generations", "v1/images/generations")
OPENAI_BASE = "/v1/ai/cloudbase/v1"
TOP_LEVEL = ("v1/ai/cloudbase/v1/chat/completions", "livez", "readyz", "healthz", "metrics", "console",
             "admin/v1/openapi.json")


def path_hint(path: str) -> str:
    """A "did you mean" sentence for an unknown path, or "" when nothing fits."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["v1", "ai"] and len(parts) >= 3 and parts[2]:
        tail = "/".join(parts[3:])
        near = difflib.get_close_matches(tail, GROUP_TAILS, n=1, cutoff=0.5) if tail else []
        suggestion = near[0] if near else "chat/completions"
        return f"; did you mean /v1/ai/{parts[2]}/{suggestion}?"
    if parts[0] in ("v1", "chat", "models", "completions"):
        rest = "/".join(parts[1:] if parts[0] == "v1" else parts) or "chat/completions"
        return (f"; did you mean {OPENAI_BASE}/{rest}? An OpenAI SDK's base_url is "
                f"http://<host>{OPENAI_BASE} (or /v1/ai/<group>/v1 for another model group)")
    near = difflib.get_close_matches(path.strip("/"), TOP_LEVEL, n=1, cutoff=0.6)
    return f"; did you mean /{near[0]}?" if near else ""
