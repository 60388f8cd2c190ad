"""Which of a model's deployments may serve a request that carries images or audio: the one place a part a
deployment does not read is refused, on every surface (chat, Messages, Responses; agents carry text only).

A deployment's operator declares what it reads besides text (providers/base.py `Inputs`): in the config file
for the catalog's deployments, with the CLI or the admin API for a custom group. Declared false, the parts are
refused (or the request goes to a deployment that reads them, in the catalog's order), never silently dropped:
an answer that ignored the picture would read as if it had seen it. Not declared, an upstream gets the parts as
sent, as before declarations existed, so an upgrade changes nothing for an upstream that reads them.
"""
from __future__ import annotations

from dataclasses import dataclass

from cbgate.core.resolve import CATALOG_GROUP
from cbgate.errors import ModelParamInvalid
from cbgate.protocol.chat_request import ChatRequest
from cbgate.providers.base import Provider


@dataclass(frozen=True, slots=True)
class InputKind:
    field: str  # providers/base.Inputs' field, the config file's key and the admin API's
    flag: str  # the CLI's
    what: str  # as the refusal names it
    parts: dict[str, str]  # surface -> the parts as its clients name them


VISION = InputKind("vision", "--vision", "images", {"chat": "image_url parts", "messages": "image blocks",
                                                     "responses": "input_image parts"})
AUDIO = InputKind("audio_input", "--audio-input", "audio", {"chat": "input_audio parts"})
FIELD = {"responses": "input"}  # the request field holding the parts, where it is not `messages`


def needed(req: ChatRequest) -> list[InputKind]:
    return [kind for kind, carried in ((VISION, req.has_images), (AUDIO, req.has_audio)) if carried]


def able_deployments(providers: list[Provider], req: ChatRequest, group: str) -> list[Provider]:
    """The deployments that read every kind of part the request carries: those declaring it first, then those
    declaring nothing (trusted to answer for themselves: an upstream's own refusal of an image is a 400 that
    no fallback follows), each in the catalog's order. Raises AI_MODEL_PARAM_INVALID, saying which
    deployments do not read them and how their operator declares one that does, when none is left."""
    kinds = needed(req)
    if not kinds:
        return providers
    declared = [p for p in providers if all(getattr(p.inputs, kind.field) for kind in kinds)]
    trusted = [p for p in providers if p not in declared
               and all(getattr(p.inputs, kind.field) is not False for kind in kinds)]
    if declared or trusted:
        return declared + trusted
    # the kind every deployment refuses, else (each refuses a different one) the first one's
    kind = next((k for k in kinds if all(getattr(p.inputs, k.field) is False for p in providers)), None) or \
        next(k for k in kinds if getattr(providers[0].inputs, k.field) is False)
    raise ModelParamInvalid(refusal(kind, providers, req, group))


def refusal(kind: InputKind, providers: list[Provider], req: ChatRequest, group: str) -> str:
    names = ", ".join(p.name for p in providers)
    which = f"its deployment {names} is" if len(providers) == 1 else f"its deployments {names} are"
    parts = kind.parts.get(req.surface, kind.parts["chat"])
    if group == CATALOG_GROUP:
        how = (f"the operator sets `{kind.field} = true` on a deployment of this model that reads them, in the "
               "config file's [[models.deployments]] (an embedded model also needs its projector, the mmproj "
               "file, in `args`)")
    else:
        how = (f"if the group's upstream reads them, declare it: `cbgate group set-capabilities --env <env> {group} "
               f"{kind.flag}`, or {{\"{kind.field}\": true}} in PUT /admin/v1/envs/<env>/groups/{group}")
    return (f"invalid parameter `{FIELD.get(req.surface, 'messages')}`: model {req.model!r} in group {group!r} "
            f"does not read {kind.what} ({parts}): {which} declared without {kind.field.replace('_', ' ')}. "
            f"Send text only; or, to serve {kind.what}, {how}")
