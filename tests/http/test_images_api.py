"""Image generation through the official `openai` SDK: passed through to an OpenAI-compatible upstream
(extra fields included), metered per image, and refused clearly by the embedded engine."""
from __future__ import annotations

import openai
import pytest
import requests

from tests.support.ledger import wait_for_records


@pytest.fixture
def client(surfaces):
    return openai.OpenAI(base_url=surfaces.base(), api_key=surfaces.gw.key, max_retries=0)


def test_images_pass_through_and_are_metered_per_image(surfaces, client, fake):
    result = client.images.generate(model="up-image", prompt="a red kite over West Lake", n=2, size="1280x720",
                                    response_format="url", extra_body={"watermark": False, "seed": 7})
    assert [image.url for image in result.data] == ["https://images.fake/0.png", "https://images.fake/1.png"]
    assert result.data[0].revised_prompt == "a red kite over West Lake"
    sent = fake.chat_requests[-1]
    assert sent.path == "/v1/images/generations" and sent.headers["authorization"] == "Bearer " + "sk-surfaces-upstream-secret-42"
    assert sent.json() == {"model": "upstream-model", "prompt": "a red kite over West Lake", "n": 2, "size": "1280x720",
                           "response_format": "url", "watermark": False, "seed": 7}
    rows = wait_for_records(surfaces.gw.admin.store, surfaces.gw.env_id, 1,
                            where=lambda r: r.surface == "images" and r.images == 2)
    assert rows and rows[0].model == "up-image" and rows[0].code is None


def test_b64_answers(client, fake):
    result = client.images.generate(model="up-image", prompt="a cat", response_format="b64_json")
    assert result.data[0].b64_json and len(result.data) == 1


def test_the_embedded_engine_does_not_generate_images(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="gemma-3-270m", prompt="a cat")
    assert caught.value.body["code"] == "AI_MODEL_NOT_SUPPORTED"
    assert "does not generate images" in caught.value.body["message"]


def test_missing_prompt(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="up-image", prompt="")
    assert caught.value.body["code"] == "AI_MODEL_PARAM_REQUIRED"


@pytest.mark.parametrize("model", [{"a": 1}, "up-image\x00", "m" * 300])
def test_a_malformed_model_name_is_refused(surfaces, model):
    reply = requests.post(surfaces.base() + "/images/generations", headers=surfaces.gw.headers(),
                          json={"model": model, "prompt": "a cat"})
    assert reply.status_code == 400 and reply.json()["code"] == "AI_MODEL_PARAM_INVALID"
