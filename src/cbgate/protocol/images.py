"""The image generation request (`images/generations`), validated once; the body passes on to the
upstream as received, extra fields included, with only `model` renamed where the deployment asks."""
from __future__ import annotations

from cbgate.errors import ModelParamInvalid, ModelParamRequired
from cbgate.protocol.chat_request import MAX_NAME_LENGTH, ChatRequest
from cbgate.protocol.surface import StreamRender, Surface
from cbgate.text import text_problem

MAX_IMAGES = 10
RESPONSE_FORMATS = ("url", "b64_json")


def _invalid(name: str, why: str) -> ModelParamInvalid:
    return ModelParamInvalid(f"invalid parameter `{name}`: {why}")


def parse_images_request(body: dict) -> ChatRequest:
    """The canonical request of an image generation: the prompt as its one message (admission and the
    ledger read it), the body itself in `raw` for the upstream."""
    model = body.get("model")
    if not model:
        raise ModelParamRequired("`model` is required")
    problem = text_problem(model, MAX_NAME_LENGTH)  # the model name reaches the ledger and logs
    if problem:
        raise _invalid("model", problem)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ModelParamRequired("`prompt` is required")
    n = body.get("n", 1)
    if n is None:
        n = 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
        raise _invalid("n", f"must be an integer from 1 to {MAX_IMAGES}")
    if body.get("size") is not None and not isinstance(body["size"], str):
        raise _invalid("size", "must be a string such as 1024x1024")
    if body.get("response_format") is not None and body["response_format"] not in RESPONSE_FORMATS:
        raise _invalid("response_format", "must be url or b64_json")
    if body.get("stream"):
        raise _invalid("stream", "image generation is not streamed here")
    return ChatRequest(model=model, messages=[{"role": "user", "content": prompt}], n=n, max_tokens=1,
                       raw=body, surface="images")


def image_count(body: dict) -> int:
    """The images an upstream answer carries (what is metered), or -1 when it carries none in a list."""
    data = body.get("data")
    if not isinstance(data, list):
        return -1
    return sum(1 for item in data if isinstance(item, dict) and (item.get("url") or item.get("b64_json")))


class ImagesSurface(Surface[ChatRequest]):
    """Image generation: one JSON answer (the upstream's body), never a stream."""
    name = "images"
    generates_images = True

    def parse(self, body: dict) -> ChatRequest:
        return parse_images_request(body)

    def stream(self, req: ChatRequest, request_id: str) -> StreamRender:
        """Never asked: `parse` refuses `stream`, so every images request is answered with one JSON body."""
        raise TypeError("an images request is never streamed")


IMAGES = ImagesSurface()
