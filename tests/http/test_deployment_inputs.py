"""What a deployment reads besides text, as its operator declared it in the config file, on every surface that
carries images: chat (`image_url`), Messages (`image` blocks), Responses (`input_image`). A deployment that
reads images gets them; a text-only one is never sent them (the client is told why and how to declare one); a
model with both kinds of deployment serves images from the one that reads them; an undeclared upstream gets
the parts as sent, as before declarations existed."""
from __future__ import annotations

import pytest
import requests

from tests.support.gateway import start_in_thread
from tests.support.ledger import wait_for_records

PICTURE = "data:image/png;base64,iVBORw0KGgo="
IMAGE_PART = {"type": "image_url", "image_url": {"url": PICTURE}}
AUDIO_PART = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


def chat_with(model: str, *parts: dict, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": [{"type": "text", "text": "what is it?"},
                                                                        *parts]}], **extra}


def messages_with_image(model: str) -> dict:
    return {"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is it?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]}


def responses_with_image(model: str) -> dict:
    return {"model": model, "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "what is it?"}, {"type": "input_image", "image_url": PICTURE}]}]}


SURFACES = {  # path under the group, body, the request field and the parts as that surface's clients name them
    "chat": ("/chat/completions", lambda m: chat_with(m, IMAGE_PART), "`messages`", "image_url parts"),
    "messages": ("/v1/messages", messages_with_image, "`messages`", "image blocks"),
    "responses": ("/responses", responses_with_image, "`input`", "input_image parts"),
}


def post(surfaces, path: str, body: dict) -> requests.Response:
    return requests.post(surfaces.base() + path, json=body, headers=surfaces.gw.headers(), timeout=30)


def sent_image_urls(fake) -> list[str]:
    """The image URLs in the last chat body the fake upstream received."""
    body = fake.chat_requests[-1].json()
    return [p["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list)
            for p in m["content"] if p.get("type") == "image_url"]


@pytest.mark.parametrize("surface", SURFACES)
def test_a_deployment_declaring_vision_is_sent_the_image(surfaces, fake, surface):
    path, body, _, _ = SURFACES[surface]
    r = post(surfaces, path, body("up-vision"))
    assert r.status_code == 200, r.text
    assert sent_image_urls(fake) == [PICTURE]


@pytest.mark.parametrize("surface", SURFACES)
def test_a_text_only_deployment_refuses_images_saying_why_and_how(surfaces, fake, surface):
    path, body, field, parts = SURFACES[surface]
    r = post(surfaces, path, body("up-text"))
    assert r.status_code == 400 and r.json()["code"] == "AI_MODEL_PARAM_INVALID", r.text
    message = r.json()["message"]
    assert message.startswith(f"invalid parameter {field}") and f"does not read images ({parts})" in message
    assert "text-main" in message and "`vision = true`" in message  # which deployment, and how to declare one
    assert fake.chat_requests == []  # never sent, so never silently dropped


def test_the_refusal_is_recorded_in_the_ledger(surfaces, fake):
    r = surfaces.gw.chat(chat_with("up-text", IMAGE_PART))
    gw = surfaces.gw
    [record] = wait_for_records(gw.admin.store, gw.env_id, 1, lambda rec: rec.request_id == r.headers["x-request-id"])
    assert record.status == 400 and record.code == "AI_MODEL_PARAM_INVALID" and record.model == "up-text"


def test_audio_goes_only_to_a_deployment_declaring_it(surfaces, fake):
    refused = surfaces.gw.chat(chat_with("up-text", AUDIO_PART))
    assert refused.status_code == 400 and refused.json()["code"] == "AI_MODEL_PARAM_INVALID"
    assert "does not read audio (input_audio parts)" in refused.json()["message"]
    assert "`audio_input = true`" in refused.json()["message"] and fake.chat_requests == []
    served = surfaces.gw.chat(chat_with("up-vision", AUDIO_PART))
    assert served.status_code == 200, served.text
    assert fake.chat_requests[-1].json()["messages"][0]["content"][1] == AUDIO_PART


def test_an_undeclared_upstream_is_sent_images_as_before(surfaces, fake):
    r = surfaces.gw.chat(chat_with("up-openai", IMAGE_PART))
    assert r.status_code == 200, r.text
    assert sent_image_urls(fake) == [PICTURE]


@pytest.mark.parametrize("model", ["up-mixed", "up-prefer"])  # after a text-only one; after an undeclared one
@pytest.mark.parametrize("surface", SURFACES)
def test_a_mixed_model_serves_images_from_its_deployment_with_vision(surfaces, fake, surface, model):
    path, body, _, _ = SURFACES[surface]
    r = post(surfaces, path, body(model))
    assert r.status_code == 200, r.text
    assert [q.json()["model"] for q in fake.chat_requests] == ["vision-model"] and sent_image_urls(fake) == [PICTURE]


@pytest.mark.parametrize("model", ["up-mixed", "up-prefer"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_mixed_model_serves_text_from_its_first_deployment(surfaces, fake, stream, model):
    r = surfaces.gw.chat({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream})
    assert r.status_code == 200, r.text
    assert [q.json()["model"] for q in fake.chat_requests] == ["text-model"]


def test_an_embedded_model_declaring_vision_is_sent_the_image(tmp_path):
    gw = start_in_thread(tmp_path / "data", engine={"vision": True})  # its mmproj would be in `args`
    try:
        r = gw.chat(chat_with("gemma-3-270m", IMAGE_PART))
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "echo: what is it?[image_url]"
        audio = gw.chat(chat_with("gemma-3-270m", AUDIO_PART))  # vision does not declare audio
        assert audio.status_code == 400 and "does not read audio" in audio.json()["message"]
    finally:
        gw.stop()
