"""The one edge: 404 and 405 decided in one table (every 405 says what the path takes), errors of the
Responses and Messages surfaces in the client's own field names, and every refusal counted once."""
from __future__ import annotations

import pytest
import requests

MODEL = "gemma-3-270m"


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/v1/ai/cloudbase/chat/completions", "POST"),
    ("GET", "/v1/ai/cloudbase/v1/chat/completions", "POST"),
    ("POST", "/v1/ai/cloudbase/v1/models", "GET"),
    ("PUT", "/v1/ai/cloudbase/v1/models/gemma-3-270m", "GET"),
    ("GET", "/v1/ai/cloudbase/v1/messages", "POST"),
    ("GET", "/v1/ai/cloudbase/v1/messages/count_tokens", "POST"),
    ("GET", "/v1/ai/cloudbase/v1/images/generations", "POST"),
    ("GET", "/v1/ai/cloudbase/v1/responses", "POST"),
    ("GET", "/v1/ai/cloudbase/v1/responses/compact", "POST"),
    ("PUT", "/v1/ai/cloudbase/v1/responses/resp_1", "DELETE, GET"),
    ("DELETE", "/v1/ai/cloudbase/responses/resp_1/input_items", "GET"),
    ("POST", "/v1/aibot/bots/bot-x", "DELETE, GET, PATCH"),
    ("TRACE", "/v1/aibot/bots/bot-x", "DELETE, GET, PATCH"),  # the agent's own row's, not its {rest*} row's
    ("POST", "/livez", "GET, HEAD"),
    ("POST", "/readyz", "GET, HEAD"),
    ("POST", "/healthz", "GET, HEAD"),
    ("POST", "/metrics", "GET, HEAD"),
    ("POST", "/console/", "GET, HEAD"),
    ("PUT", "/admin/v1/envs", "GET, POST"),
    ("POST", "/admin/v1/openapi.json", "GET"),
])
def test_every_405_names_the_methods_the_path_takes(surfaces, method, path, allow):
    r = requests.request(method, surfaces.gw.url + path, headers=surfaces.gw.headers(), timeout=30)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow
    body = r.json()
    assert body["code"] == "INVALID_PATH" and allow.split(", ")[0] in body["message"]


def test_a_405_on_the_messages_path_wears_anthropics_envelope(surfaces):
    r = requests.get(surfaces.base() + "/v1/messages", headers={"x-api-key": surfaces.gw.key}, timeout=30)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"


def test_an_unknown_path_is_a_404_that_suggests_the_right_one(surfaces):
    r = requests.post(surfaces.base() + "/chat/completion", headers=surfaces.gw.headers(), json={}, timeout=30)
    assert r.status_code == 404 and "chat/completions" in r.json()["message"]


@pytest.mark.parametrize("body,named", [
    ({"input": [{"type": "function_call_output", "call_id": "call\x00x", "output": "ok"}]}, "input[0].call_id"),
    ({"input": [{"type": "function_call", "call_id": "c1", "name": "x" * 300, "arguments": "{}"}]}, "input[0].name"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": ""}]}]},
     "input[0].content[0].image_url"),
    ({"input": []}, "input"),
    ({"input": [{"role": "user", "content": "hi"}] * 2049}, "input"),
    ({"input": "hi", "text": {"format": "json"}}, "text.format"),
])
def test_responses_errors_name_the_fields_the_client_sent(surfaces, body, named):
    r = requests.post(surfaces.base() + "/v1/responses", headers=surfaces.gw.headers(),
                      json={"model": MODEL, **body}, timeout=30)
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert f"`{named}`" in message and "messages" not in message


@pytest.mark.parametrize("body,named", [
    ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t\x00"}]}]},
     "messages[0].content[0].tool_use_id"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "c1", "name": "x" * 300, "input": {}}]}]}, "messages[1].content[0].name"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "see"},
                                                {"type": "image", "source": {"type": "url", "url": ""}}]}]},
     "messages[0].content[1].source.url"),
])
def test_messages_errors_name_the_fields_the_client_sent(surfaces, body, named):
    r = requests.post(surfaces.base() + "/v1/messages", headers={"x-api-key": surfaces.gw.key}, timeout=30,
                      json={"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}], **body})
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert f"`{named}`" in message and "tool_call" not in message and "image_url" not in message


def _rejected(surfaces, code: str) -> int:
    return surfaces.gw.app.metrics.requests.get(("", "", "", code), 0)


@pytest.mark.parametrize("path,body,code", [
    ("/v1/responses/compact", {"model": MODEL, "input": []}, "AI_MODEL_PARAM_INVALID"),  # nothing to compact
    ("/v1/responses/resp_missing/compact", {"model": MODEL}, "INVALID_PATH"),
    ("/v1/responses", {"model": MODEL, "input": "hi", "previous_response_id": "resp_missing"},
     "AI_MODEL_PARAM_INVALID"),
    ("/v1/responses", {"model": MODEL, "input": []}, "AI_MODEL_PARAM_INVALID"),  # nothing to answer
])
def test_a_refusal_inside_a_responses_request_is_counted_once(surfaces, path, body, code):
    before = _rejected(surfaces, code)
    r = requests.post(surfaces.base() + path, headers=surfaces.gw.headers(), json=body, timeout=30)
    assert r.status_code in (400, 404) and r.json()["code"] == code, r.text
    assert _rejected(surfaces, code) == before + 1
