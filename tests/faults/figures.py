"""The figures each fault test asserts and reports: ledger records expected, got and duplicated, and
tokens billed against tokens served. With CBGATE_FAULT_FIGURES=<file>, each test appends its line (JSON),
which is where the README's "What survives what" table comes from."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import orjson

from cbgate.store.usage import UsageRecord


@dataclass
class Figures:
    fault: str
    expected: int  # records the ledger must hold: one per request the gateway served (or began serving)
    got: int  # of those, the records it holds
    duplicated: int  # records beyond one per request
    billed: int  # completion tokens the ledger bills for them
    served: int  # completion tokens the upstream produced for them (or the client received, where said)

    def report(self) -> Figures:
        target = os.environ.get("CBGATE_FAULT_FIGURES")
        if target:
            with open(target, "ab") as f:
                f.write(orjson.dumps(asdict(self)) + b"\n")
        return self


def count(fault: str, expected_ids: set[str], rows: list[UsageRecord], served: int) -> Figures:
    """Figures of the rows (all the env's ledger rows) against the request ids that must be billed."""
    ids = [r.request_id for r in rows]
    mine = [r for r in rows if r.request_id in expected_ids]
    return Figures(fault, len(expected_ids), len({r.request_id for r in mine}), len(ids) - len(set(ids)),
                   sum(r.completion_tokens for r in mine), served).report()
