"""The model plane's rows of the route table: `/v1/ai/{group}/...`, as CloudBase routes it. Each model
surface is one `ModelRoute` over its contract; the same path under `v1/` too, since OpenAI and Anthropic
SDKs add it to a base URL. A new surface adds its rows here (docs/architecture.md: how to add one)."""
from __future__ import annotations

from cbgate.core.context import ContextCounter
from cbgate.core.model_service import ModelService
from cbgate.core.responses import ResponsesService
from cbgate.core.shutdown import ShutdownDeadline
from cbgate.http.model_resources import ModelResources
from cbgate.http.model_route import ModelRoute
from cbgate.http.route_table import Route
from cbgate.protocol.anthropic_messages import MESSAGES
from cbgate.protocol.chat_surface import CHAT, LAST_TEXT_USAGE, TENCENT_CHAT
from cbgate.protocol.images import IMAGES
from cbgate.protocol.responses_render import RESPONSES

GROUP = "/v1/ai/{group}"

# The paths @cloudbase/ai's createModel(name) posts chat completions to (its MODELS map), each served by the
# group of that name; the other providers use chat/completions or v1/chat/completions, served for every group.
SDK_CHAT_PATHS = {
    "ark": "api/v3/chat/completions",
    "dashscope": "compatible-mode/v1/chat/completions",
    "zhipu": "api/paas/v4/chat/completions",
    "hunyuan-beta": "openapi/v1/chat/completions",
}


def both(tail: str) -> tuple[str, str]:
    """A group path as CloudBase names it, and with the `v1/` an SDK's base URL adds."""
    return f"{GROUP}/{tail}", f"{GROUP}/v1/{tail}"


def model_rows(service: ModelService, responses: ResponsesService, counter: ContextCounter,
               max_body_bytes: int, deadline: ShutdownDeadline) -> list[Route]:
    def route(surface, turn=None) -> ModelRoute:
        return ModelRoute(service, surface, max_body_bytes, deadline, turn)

    more = ModelResources(service, responses, counter, max_body_bytes)
    chat, images, answer = route(CHAT), route(IMAGES), route(RESPONSES, responses.turn)
    rows = [Route(p, {"POST": chat}, cors=True) for p in both("chat/completions")]
    rows += [Route(p, {"GET": more.models}, cors=True) for p in both("models") + both("models/{model}")]
    rows += [Route(f"{GROUP}/v1/messages", {"POST": route(MESSAGES)}, MESSAGES.error_body, cors=True),
             Route(f"{GROUP}/v1/messages/count_tokens", {"POST": more.count_tokens}, MESSAGES.error_body,
                   cors=True)]
    rows += [Route(p, {"POST": images}, cors=True) for p in both("images/generations")]
    rows += _sdk_rows(route, images)
    for base in both("responses"):
        rows += [Route(base, {"POST": answer}, cors=True),
                 Route(f"{base}/compact", {"POST": more.compact}, cors=True),
                 Route(base + "/{id}", {"GET": more.get_response, "DELETE": more.delete_response}, cors=True),
                 Route(base + "/{id}/input_items", {"GET": more.input_items}, cors=True),
                 Route(base + "/{id}/compact", {"POST": more.compact}, cors=True)]
    return rows


def _sdk_rows(route, images) -> list[Route]:
    """@cloudbase/ai's own paths: its named providers' chat paths, Hunyuan's Tencent Cloud API path (the
    group's root), 01-ai's reader that needs usage on the last text chunk, and Hunyuan's AR image path."""
    chat = route(CHAT)
    rows = [Route(f"/v1/ai/{group}/{path}", {"POST": chat}, cors=True, bound={"group": group})
            for group, path in SDK_CHAT_PATHS.items()]
    rows.append(Route("/v1/ai/hunyuan", {"POST": route(TENCENT_CHAT)}, cors=True, bound={"group": "hunyuan"}))
    last_text = route(LAST_TEXT_USAGE)
    rows += [Route(p.replace("{group}", "01-ai"), {"POST": last_text}, cors=True, bound={"group": "01-ai"})
             for p in both("chat/completions")]
    rows.append(Route(f"{GROUP}/images/ar/generations", {"POST": images}, cors=True))
    return rows
