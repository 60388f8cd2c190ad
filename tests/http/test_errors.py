"""Every bad input gets a CloudBase error body with the right status, streaming or not; never a 5xx."""
import socket
import time

import pytest
import requests

from tests.support.wait import wait_until

MODEL = "gemma-3-270m"
USER = [{"role": "user", "content": "hi"}]


def assert_error(r: requests.Response, status: int, code: str, mentions: str = "") -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["code"] == code and body["requestId"] and body["message"]
    assert body["error"]["message"] == body["message"]  # OpenAI SDKs read this one
    assert mentions in body["message"]
    return body


INVALID = [
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_p": -0.1}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 1.5}, "max_tokens"),
    ({"max_tokens": "10"}, "max_tokens"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
    ({"messages": [{"role": "user", "content": 42}]}, "content"),
    ({"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}, "content"),
    ({"messages": [{"role": "user"}]}, "content"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"stream": "yes"}, "stream"),
    ({"stop": 5}, "stop"),
    ({"n": 0}, "n"),
    ({"tools": "all"}, "tools"),
    ({"model": 7}, "model"),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("change,field", INVALID)
def test_invalid_parameters_name_the_field(gateway, change, field, stream):
    body = {"model": MODEL, "messages": USER, **change}
    if "stream" not in change:
        body["stream"] = stream
    assert_error(gateway.chat(body), 400, "AI_MODEL_PARAM_INVALID", field)


@pytest.mark.parametrize("stream", [False, True])
def test_missing_model(gateway, stream):
    assert_error(gateway.chat({"messages": USER, "stream": stream}), 400, "AI_MODEL_PARAM_REQUIRED", "model")


VALID_SHAPES = [
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    [{"role": "user", "content": "weather?"},
     {"role": "assistant", "content": None,
      "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
     {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
     {"role": "user", "content": "thanks"}],
]


@pytest.mark.parametrize("messages", VALID_SHAPES)
def test_valid_openai_shapes_pass(gateway, messages):
    tools = [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]
    r = gateway.chat({"model": MODEL, "messages": messages, "tools": tools, "tool_choice": "auto",
                      "temperature": 0, "top_p": 1, "max_tokens": 5, "seed": 1, "user": "u1",
                      "presence_penalty": 0, "frequency_penalty": 0, "n": 1})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b""])
def test_body_not_a_json_object(gateway, raw):
    r = requests.post(gateway.chat_url(), data=raw, headers={**gateway.headers(), "Content-Type": "application/json"})
    assert_error(r, 400, "INVALID_PARAM")


def test_missing_and_unknown_keys(gateway):
    assert_error(requests.post(gateway.chat_url(), json={"model": MODEL, "messages": USER}),
                 401, "MISSING_CREDENTIALS")
    assert_error(requests.post(gateway.chat_url(), json={"model": MODEL, "messages": USER},
                               headers={"Authorization": "Basic abc"}), 401, "MISSING_CREDENTIALS")
    assert_error(gateway.chat({"model": MODEL, "messages": USER}, key="cbsk_nope"), 401, "INVALID_ACCESS_TOKEN")
    assert_error(gateway.chat({"model": MODEL, "messages": USER, "stream": True}, key="cbsk_nope"),
                 401, "INVALID_ACCESS_TOKEN")


def test_expired_key(gateway):
    row, key = gateway.admin.create_key(gateway.env_id, expires_days=1 / 86400)
    gateway.wait_for_snapshot()
    wait_until(lambda: time.time() > row.expires_at, "the key's expiry")
    assert_error(gateway.chat({"model": MODEL, "messages": USER}, key=key), 401, "ACCESS_TOKEN_EXPIRED")


def test_revoked_key_is_refused_once_the_gateway_reloads(gateway):
    row, key = gateway.admin.create_key(gateway.env_id)
    gateway.wait_for_snapshot()
    assert gateway.chat({"model": MODEL, "messages": USER}, key=key).status_code == 200
    gateway.admin.revoke_key(row.id)
    gateway.wait_for_snapshot()
    assert_error(gateway.chat({"model": MODEL, "messages": USER}, key=key), 401, "INVALID_ACCESS_TOKEN")


def test_unknown_group_model_not_in_group_and_model_switched_off(gateway):
    assert_error(gateway.chat({"model": MODEL, "messages": USER}, group="nosuch"), 404, "AI_MODEL_NOT_FOUND")
    assert_error(gateway.chat({"model": "gpt-9", "messages": USER}), 400, "AI_MODEL_NOT_SUPPORTED", "gpt-9")
    gateway.admin.set_model(gateway.env_id, "cloudbase", MODEL, False)
    gateway.wait_for_snapshot()
    assert_error(gateway.chat({"model": MODEL, "messages": USER}), 403, "AI_MODEL_DISABLED")
    assert_error(gateway.chat({"model": MODEL, "messages": USER, "stream": True}), 403, "AI_MODEL_DISABLED")
    r = requests.get(gateway.url + "/v1/ai/cloudbase/v1/models", headers=gateway.headers())
    assert r.json()["data"] == []
    gateway.admin.set_model(gateway.env_id, "cloudbase", MODEL, True)
    gateway.wait_for_snapshot()
    assert gateway.chat({"model": MODEL, "messages": USER}).status_code == 200


def test_unknown_path_and_wrong_method(gateway):
    assert_error(requests.get(gateway.url + "/v1/nothing"), 404, "INVALID_PATH")
    assert_error(requests.post(gateway.url + "/v1/ai/cloudbase/completions", headers=gateway.headers()),
                 404, "INVALID_PATH")
    assert_error(requests.get(gateway.chat_url(), headers=gateway.headers()), 405, "INVALID_PATH")


def test_oversized_body_is_refused_before_it_is_read(tmp_path):
    from tests.support.gateway import start_in_thread

    gw = start_in_thread(tmp_path / "data", env={"CBGATE_MAX_BODY_BYTES": "1000"})
    try:
        big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 2000}]}
        assert_error(gw.chat(big), 413, "EXCEED_MAX_PAYLOAD_SIZE")
        # Announce 50 MB and send none of it: the answer comes at once.
        host, port = gw.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(f"POST /v1/ai/cloudbase/chat/completions HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {gw.key}\r\nContent-Length: 50000000\r\n\r\n".encode())
            reply = b""
            while b"EXCEED_MAX_PAYLOAD_SIZE" not in reply and (part := s.recv(4096)):
                reply += part
            reply = reply.decode()
        assert reply.startswith("HTTP/1.1 413") and "EXCEED_MAX_PAYLOAD_SIZE" in reply
    finally:
        gw.stop()


def test_host_header_names_the_environment(gateway):
    other_env = gateway.admin.create_env()
    _, other_key = gateway.admin.create_key(other_env)
    body = {"model": MODEL, "messages": USER}

    def call(host, key):
        return requests.post(gateway.chat_url(), json=body,
                             headers={"Authorization": f"Bearer {key}", "Host": host})

    gateway.wait_for_snapshot()
    assert call("localhost", other_key).status_code == 200  # any other Host: the key's own env
    assert call(f"{gateway.env_id}.api.example.com", gateway.key).status_code == 200
    assert_error(call(f"{gateway.env_id}.api.example.com", other_key), 403, "PERMISSION_DENIED")
    assert_error(call("no-such-env.api.example.com", gateway.key), 403, "INVALID_ENV")
