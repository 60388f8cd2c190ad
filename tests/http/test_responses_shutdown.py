"""A Responses stream still running at the shutdown deadline ends with response.failed and an `error` event
saying why, and is billed as a gateway error, like chat and Messages streams (`cbgate serve`, SIGTERM)."""
from __future__ import annotations

import json
import signal

import pytest
import requests

from cbgate.store.usage import recent_requests
from tests.support.catalog import write_catalog
from tests.support.fake_upstream import Reply, start_fake_upstream
from tests.support.gateway import make_admin, start_serve
from tests.support.wait import wait_until


@pytest.mark.timing
def test_sigterm_ends_a_responses_stream_with_failure_events(tmp_path):
    fake = start_fake_upstream(Reply(events=400, chunk_delay=0.02))  # 8 s: longer than the deadline
    data_dir = tmp_path / "data"
    write_catalog(data_dir, [{"name": "slow", "deployments": [{"kind": "openai", "base_url": fake.url}]}],
                  include_embedded=False)
    admin = make_admin(data_dir, {"CBGATE_DATA_DIR": str(data_dir)})
    env_id = admin.create_env()
    _, key = admin.create_key(env_id)
    replica = start_serve(data_dir, {"CBGATE_SHUTDOWN_TIMEOUT": "4"})
    try:
        with requests.post(replica.url + "/v1/ai/cloudbase/responses", stream=True, timeout=30,
                           headers={"Authorization": f"Bearer {key}"},
                           json={"model": "slow", "input": "a long story", "stream": True}) as reply:
            lines = reply.iter_lines()
            deltas = 0
            for line in lines:
                deltas += line.startswith(b"data: ") and b'"response.output_text.delta"' in line
                if deltas == 5:
                    break
            replica.proc.send_signal(signal.SIGTERM)
            events = [json.loads(line[6:]) for line in lines if line.startswith(b"data: ")]
        replica.proc.wait(15)
    finally:
        replica.proc.kill()
        fake.stop()
    assert [e["type"] for e in events[-2:]] == ["response.failed", "error"]
    assert "shutting down" in events[-1]["message"] and events[-1]["code"] == "SYS_ERR"
    assert events[-2]["response"]["status"] == "failed"
    rows = wait_until(lambda: recent_requests(admin.store, env_id), "the stream's ledger record")
    assert rows[0].surface == "responses" and rows[0].code == "SYS_ERR" and rows[0].completion_tokens >= 5
    admin.store.close()
