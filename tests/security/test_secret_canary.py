"""Secret canaries through every output: a tenant group's upstream key (the upstream echoes it back at
every offset, in every kind of answer), the env's client keys and an operator token must never appear,
whole or in part, in responses, errors, stream events, the admin API, the console's files, /metrics,
logs or any file in the data directory (issue 11, part 4)."""
from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
import requests

from cbgate.providers.upstream_http import Endpoint
from cbgate.text import mask_secret
from tests.support.gateway import start_in_thread
from tests.support.scripted_upstream import RawAnswer, ScriptedUpstream

UPSTREAM_SECRET = "sk-canary-Zq8mV2xT9wL4pR7nK3yB6cH1dF5gJ0sA"
WINDOW = 10  # characters: any run this long of a secret's random part counts as a leak


def leaks(secret: str, shown_prefix: int, text: str) -> list[str]:
    """The parts of `secret` (past its intentionally shown prefix) that appear in `text`."""
    part = secret[shown_prefix:]
    return [part[i:i + WINDOW] for i in range(len(part) - WINDOW + 1) if part[i:i + WINDOW] in text]


def echo(offset: int, status: int = 401, wrap: bool = True) -> RawAnswer:
    """An upstream error that repeats the key it was sent, after `offset` characters."""
    text = "x" * offset + " invalid api key {SECRET} given"
    body = orjson.dumps({"error": {"message": text}}).replace(b"{SECRET}", b"{SECRET}") if wrap else text.encode()
    return RawAnswer(body, "application/json" if wrap else "text/plain", status)


def sse(*events: bytes) -> RawAnswer:
    return RawAnswer(b"".join(b"data: " + e + b"\n\n" for e in events), "text/event-stream")


CHUNK = b'{"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}'

ANSWERS = (
    [echo(offset) for offset in (0, 150, 190, 250, 270, 280, 286, 290, 295, 299, 300, 320)]
    + [echo(offset, 500, wrap=False) for offset in (0, 190, 286, 299)]
    + [echo(286, 400), echo(286, 429), echo(286, 302)]
    + [RawAnswer(orjson.dumps({"error": {"message": "x" * 286 + " {SECRET}"}}).replace(b"{SECRET}", b"{SECRET}"))]
    + [RawAnswer(b"x" * 190 + b" {SECRET} not json", "application/json")]
    + [RawAnswer(b'{"choices":[{"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":"{SECRET}"}}')]
    + [RawAnswer(b'{"choices":"{SECRET}"}')]
)
STREAMS = [
    sse(CHUNK, b'{"error":{"message":"' + b"y" * 280 + b' {SECRET}"}}'),
    sse(CHUNK, b"z" * 190 + b" {SECRET} garbage"),
    sse(b"z" * 190 + b" {SECRET} garbage"),
    sse(CHUNK, b'{"choices":[],"usage":{"prompt_tokens":"{SECRET}"}}'),
    RawAnswer(orjson.dumps({"error": {"message": "w" * 286 + " {SECRET}"}}), "application/json"),
]


def test_masking_comes_before_shortening_and_masks_whole_tokens():
    endpoint = Endpoint("e", "http://up.example/v1", {}, UPSTREAM_SECRET, True)
    for offset in range(250, 310):
        shown = endpoint.scrub("x" * offset + " " + UPSTREAM_SECRET + " tail")
        assert len(shown) <= 300 and not leaks(UPSTREAM_SECRET, 0, shown), offset
    short = Endpoint("e", "http://up.example/v1", {}, "k", True)
    assert short.scrub("fake internal error") == "fake internal error"
    assert short.scrub("bad key k, key=k") == "bad key ***, key=***"
    assert mask_secret("Bearer ab12;", "ab12") == "Bearer ***;"


@pytest.fixture(scope="module")
def upstream():
    up = ScriptedUpstream().start()
    yield up
    up.stop()


class Collected(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot be formatted is still looked at
            self.lines.append(repr(record.__dict__))


def test_no_canary_reaches_any_output(tmp_path, upstream):
    handler = Collected()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    data_dir = tmp_path / "data"
    gw = start_in_thread(data_dir, env={"CBGATE_UPSTREAM_ALLOW": "127.0.0.1",
                                        "CBGATE_SECRET_KEY": "operator-passphrase-canary"})
    seen: list[str] = []
    try:
        _, publishable = gw.admin.create_key(gw.env_id, "publishable", name="web")
        _, operator = gw.admin.create_operator_token("canary")
        gw.wait_for_snapshot()
        canaries = [(UPSTREAM_SECRET, 0), (gw.key, 12), (publishable, 12), (operator, 12)]

        def record(reply: requests.Response) -> requests.Response:
            seen.append(reply.text)
            seen.append("\n".join(f"{k}: {v}" for k, v in reply.headers.items()))
            return reply

        group = {"name": "echoes", "base_url": upstream.url, "models": ["m"], "api_key": UPSTREAM_SECRET}
        created = record(requests.post(f"{gw.url}/admin/v1/envs/{gw.env_id}/groups", json=group,
                                       headers=gw.headers(), timeout=30))
        assert created.status_code == 201, created.text
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        for answer in ANSWERS:
            upstream.answer(answer, answer, answer)  # retries see the same answer
            reply = record(gw.chat(body, group="echoes"))
            assert reply.status_code in (200, 400, 401, 429, 502, 504), reply.text
            upstream.answers.clear()
        for answer in STREAMS:
            upstream.answer(answer, answer, answer)
            record(gw.chat({**body, "stream": True}, group="echoes"))
            upstream.answers.clear()
        assert upstream.served >= len(ANSWERS) + len(STREAMS)

        for path in ("/me", "/envs", f"/envs/{gw.env_id}", f"/envs/{gw.env_id}/keys", f"/envs/{gw.env_id}/groups",
                     f"/envs/{gw.env_id}/usage", f"/envs/{gw.env_id}/usage/series", f"/envs/{gw.env_id}/requests",
                     f"/envs/{gw.env_id}/limits", "/operator/tokens", "/openapi.json"):
            record(requests.get(f"{gw.url}/admin/v1{path}", headers={"Authorization": f"Bearer {operator}"},
                                timeout=30))
        for name in ("", "index.html", "app.js", "api.js", "pages.js", "groups.js", "playground.js"):
            record(requests.get(f"{gw.url}/console/{name}", timeout=30))
        metrics = record(requests.get(f"{gw.url}/metrics", headers={"Authorization": f"Bearer {operator}"},
                                      timeout=30))
        assert metrics.status_code == 200
    finally:
        gw.stop()
        root.removeHandler(handler)
        root.setLevel(old_level)

    files = [p for p in Path(data_dir).rglob("*") if p.is_file()]
    assert files, "the data directory should hold the store and the spool"
    outputs = {"responses": "\n".join(seen), "logs": "\n".join(handler.lines),
               **{f"file {p.relative_to(data_dir)}": p.read_bytes().decode("latin-1") for p in files}}
    assert any("invalid api key ***" in text for text in seen)  # the echo came back, masked
    for where, text in outputs.items():
        for secret, shown_prefix in canaries:
            assert not leaks(secret, shown_prefix, text), f"{where} leaks part of a secret"
