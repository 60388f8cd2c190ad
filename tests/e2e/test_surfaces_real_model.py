"""The Messages and Responses surfaces on the real embedded model, through the official SDKs: a stream, a
continued conversation and image generation refused, with answers of a few tokens (three generations)."""
import re

import anthropic
import openai
import pytest

from tests.support.gateway import start_serve

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def base_and_key(tmp_path_factory):
    server = start_serve(tmp_path_factory.mktemp("surfaces-real") / "data")
    found = re.findall(r"cbsk_[A-Za-z0-9_-]{43}", server.log())
    assert found, server.log()
    yield f"{server.url}/v1/ai/cloudbase", found[0]
    server.proc.terminate()
    server.proc.wait(timeout=30)


def test_messages_stream(base_and_key):
    base, key = base_and_key
    client = anthropic.Anthropic(base_url=base, auth_token=key, max_retries=0)
    with client.messages.stream(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "你好"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and text == final.content[0].text and final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.input_tokens > 0 and 0 < final.usage.output_tokens <= 4


def test_responses_chain_and_images_refused(base_and_key):
    base, key = base_and_key
    client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
    first = client.responses.create(model=MODEL, input="My name is Lin.", max_output_tokens=4)
    assert first.status in ("completed", "incomplete") and first.output_text
    second = client.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id,
                                     max_output_tokens=4)
    assert second.usage.input_tokens > first.usage.input_tokens  # the first turn was sent again
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model=MODEL, prompt="a kite")
    assert caught.value.body["code"] == "AI_MODEL_NOT_SUPPORTED"
