"""The rule every fuzz test holds the gateway to, and the budget it runs in.

- No 5xx except 502/503/504 carrying a CloudBase code (an upstream's or the store's failure, said so).
- No traceback text in any answer.
- No stall: every answer arrives within STALL_SECONDS (the HTTP client's timeout fails the test).
- Streams end with `[DONE]` or one error event carrying a CloudBase code other than SYS_ERR.
- Afterwards the ledger still drains (each test checks a fresh request's record lands).

`CBGATE_FUZZ_SCALE` multiplies every test's number of inputs (default 1: the CI budget, 1,800 inputs in
about 40 s for tests/fuzz on 2 busy cores, well inside three minutes); `bench/fuzz.py` runs a longer,
randomised campaign.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import orjson
from hypothesis import HealthCheck, settings

STALL_SECONDS = 30
GATEWAY_FAILURE_STATUSES = (502, 503, 504)


def scale() -> float:
    return float(os.environ.get("CBGATE_FUZZ_SCALE", "1"))


def fuzz_settings(examples: int) -> settings:
    """Deterministic in CI (the same inputs every run); a longer run (scale > 1) explores at random."""
    return settings(max_examples=max(1, int(examples * scale())), deadline=None, database=None,
                    derandomize=scale() <= 1, print_blob=True,
                    suppress_health_check=list(HealthCheck))


@dataclass
class Tally:
    """What a fuzz test tried and saw, printed at its end (the README quotes these figures)."""
    name: str
    inputs: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def note(self, status: int) -> None:
        self.inputs += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def report(self) -> str:
        return (f"fuzz {self.name}: {self.inputs} inputs, {self.server_errors} 5xx (all with a CloudBase code), "
                f"statuses {dict(sorted(self.statuses.items()))}")


def check_answer(status: int, content_type: str, text: str, openai_stream: bool = True) -> None:
    """The rule for one answer; raises AssertionError saying what broke it. `openai_stream`: a stream ends
    with [DONE] or an error event (the Messages and Responses surfaces end theirs in their own way, so
    for them only the error code is checked)."""
    assert "Traceback" not in text and 'File "' not in text, f"traceback text in a {status} answer"
    if status >= 500:
        assert status in GATEWAY_FAILURE_STATUSES, f"{status}: {text[:300]}"
        body = orjson.loads(text)
        assert isinstance(body, dict) and isinstance(body.get("code"), str) and body["code"], text[:300]
        assert body["code"] != "SYS_ERR" or status == 503, text[:300]
    if status == 200 and content_type.startswith("text/event-stream"):
        events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        assert events, "an empty stream"
        if not openai_stream:
            assert '"SYS_ERR"' not in text, text[-300:]
        elif events[-1] != "[DONE]":
            last = orjson.loads(events[-1])
            assert isinstance(last.get("code"), str) and last["code"] != "SYS_ERR", events[-1][:300]
