"""GET /metrics as a Prometheus scraper reads it: counts that add up, and never a key in it."""
import re
import threading

import requests

from tests.support.chat import EMBEDDED_MODEL, ask
from tests.support.gateway import start_in_thread
from tests.support.sse import read_events

MODEL = EMBEDDED_MODEL


def scrape_text(gw) -> str:
    """The exposition as a Prometheus scraper with an operator token gets it."""
    _, token = gw.admin.create_operator_token("prometheus")
    gw.wait_for_snapshot()  # a try before the gateway knows the token would count as an error
    r = requests.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return r.text


def scrape(gw) -> dict[str, float]:
    samples = {}
    for line in scrape_text(gw).splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_only_an_operator_may_read_metrics(gateway):
    assert requests.get(gateway.url + "/metrics").status_code == 401
    r = requests.get(gateway.url + "/metrics", headers=gateway.headers())
    assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED"  # a tenant's key sees no other env


def test_requests_tokens_errors_and_histograms_add_up(gateway):
    usages = [gateway.chat(ask("one two three")).json()["usage"]]
    events = read_events(gateway.chat(ask("four five", stream=True, stream_options={"include_usage": True}),
                                      stream=True))
    usages.append(events[-2]["usage"])
    assert gateway.chat(ask("x") | {"model": "no-such-model"}).status_code == 400
    assert gateway.chat(ask("x"), key="cbsk_wrong").status_code == 401
    m = scrape(gateway)
    route = f'env="{gateway.env_id}",group="cloudbase",model="{MODEL}"'
    assert m[f'cbgate_requests_total{{{route},code="OK"}}'] == 2
    assert m[f'cbgate_prompt_tokens_total{{{route}}}'] == sum(u["prompt_tokens"] for u in usages)
    assert m[f'cbgate_completion_tokens_total{{{route}}}'] == sum(u["completion_tokens"] for u in usages)
    unresolved = f'env="{gateway.env_id}",group="cloudbase",model=""'  # a client's model name is no label
    assert m[f'cbgate_errors_total{{{unresolved},code="AI_MODEL_NOT_SUPPORTED"}}'] == 1
    assert m['cbgate_errors_total{env="",group="",model="",code="INVALID_ACCESS_TOKEN"}'] == 1
    assert m[f'cbgate_request_duration_seconds_count{{{route}}}'] == 2
    assert m[f'cbgate_request_duration_seconds_bucket{{{route},le="+Inf"}}'] == 2
    assert m[f'cbgate_time_to_first_token_seconds_count{{{route}}}'] == 1  # only the stream has a first token
    assert m[f'cbgate_in_flight_requests{{env="{gateway.env_id}",group="cloudbase"}}'] == 0


def test_in_flight_and_admission_refusals(tmp_path):
    gw = start_in_thread(tmp_path / "data", engine={"parallel": 1}, env={"CBGATE_ENGINE_QUEUE": "0"})
    gw.engine.script(token_delay=0.05)
    slow = gw.chat(ask("word " * 30, stream=True), stream=True)
    lines = slow.iter_lines()
    next(lines)
    m = scrape(gw)
    assert m[f'cbgate_in_flight_requests{{env="{gw.env_id}",group="cloudbase"}}'] == 1
    refused = gw.chat(ask("me too"))  # the engine's queue is full
    assert refused.status_code == 429 and refused.json()["code"] == "EXCEED_CONCURRENT_REQUEST_LIMIT"
    b"".join(lines)
    m = scrape(gw)
    assert m[f'cbgate_admission_refusals_total{{env="{gw.env_id}",code="EXCEED_CONCURRENT_REQUEST_LIMIT"}}'] == 1
    assert m[f'cbgate_in_flight_requests{{env="{gw.env_id}",group="cloudbase"}}'] == 0
    gw.stop()


def test_no_key_or_client_string_ever_becomes_a_label(gateway):
    canary = "cbsk_CANARY" + "x" * 40
    threads = [
        threading.Thread(target=gateway.chat, args=(ask("hi"),), kwargs={"key": canary}),
        threading.Thread(target=gateway.chat, args=(ask("hi") | {"model": canary},)),
        threading.Thread(target=gateway.chat, args=(ask(canary),)),
        threading.Thread(target=requests.post, args=(gateway.url + f"/v1/ai/{canary}/chat/completions",),
                         kwargs={"json": ask("hi"), "headers": gateway.headers()}),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    text = scrape_text(gateway)
    assert canary not in text and "CANARY" not in text and gateway.key not in text
    assert re.search(r'cbgate_requests_total\{[^}]*code="OK"\} 1', text)
