"""Schemathesis against the admin API, generated from its own OpenAPI document (`/admin/v1/openapi.json`):
valid and invalid inputs for every operation, as an operator and as an environment's server key, held
to the rule in rules.py. Afterwards chat still works and the ledger still drains."""
from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import given, strategies as st
from schemathesis import GenerationMode

from tests.fuzz.rules import STALL_SECONDS, Tally, check_answer, fuzz_settings
from tests.support.gateway import start_in_thread
from tests.support.ledger import wait_for_records


@pytest.fixture(scope="module")
def fuzzed_gateway(tmp_path_factory):
    gw = start_in_thread(tmp_path_factory.mktemp("fuzz-admin") / "data",
                         env={"CBGATE_SECRET_KEY": "operator-passphrase-for-fuzzing"})
    yield gw
    gw.stop()


def operations(gw):
    document = requests.get(f"{gw.url}/admin/v1/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 15, "the document should describe every admin route"
    return found


def strategies(gw, found):
    """Every operation, valid and invalid, on a random env and (more often) on the gateway's own env."""
    own_env = {"env": gw.env_id}
    chosen = []
    for operation in found:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            chosen.append(operation.as_strategy(mode))
            if any(p.name == "env" for p in operation.iter_parameters()):
                chosen.append(operation.as_strategy(mode, path_parameters=own_env))
    return st.one_of(chosen)


def test_the_admin_api_from_its_openapi_document(fuzzed_gateway):
    gw = fuzzed_gateway
    _, operator = gw.admin.create_operator_token("fuzz")
    gw.wait_for_snapshot()
    found = operations(gw)
    tally = Tally(f"admin API ({len(found)} operations)")
    session = requests.Session()

    @fuzz_settings(600)
    @given(case=strategies(gw, found), who=st.sampled_from(["operator", "server", "none"]))
    def run(case, who):
        token = {"operator": operator, "server": gw.key, "none": None}[who]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        reply = case.call(base_url=gw.url, session=session, headers=headers, timeout=STALL_SECONDS)
        tally.note(reply.status_code)
        content_type = reply.headers.get("content-type") or [""]  # schemathesis keeps every value of a header
        check_answer(reply.status_code, content_type[0] if isinstance(content_type, list) else content_type,
                     reply.text)

    run()
    print(tally.report())
    assert sum(n for s, n in tally.statuses.items() if s < 300) > 20  # not all refused at the door
    # A fresh env and key (the fuzzer may have switched models off or set limits in the first one).
    env_id = gw.admin.create_env()
    _, key = gw.admin.create_key(env_id)
    gw.wait_for_snapshot()
    served = gw.chat({"model": "gemma-3-270m", "messages": [{"role": "user", "content": "after"}]}, key=key)
    assert served.status_code == 200, served.text
    assert wait_for_records(gw.admin.store, env_id, 1,
                            where=lambda r: r.request_id == served.headers["x-request-id"])
