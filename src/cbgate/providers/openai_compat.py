"""OpenAI-compatible upstreams (OpenAI, DeepSeek, Hunyuan, vLLM, SGLang, Ollama, llama.cpp server...).

The client's body goes on as received (unknown fields included) with only `model` and the stream
usage request changed; stream events pass through as bytes unless `model` must be renamed, and each
is decoded once to read usage, finish reasons and error objects.
"""
from __future__ import annotations

from typing import Any, AsyncIterator

import orjson

from cbgate.errors import ModelRequestFailed
from cbgate.protocol.chat_response import Usage
from cbgate.protocol.images import image_count
from cbgate.providers.base import UNDECLARED, Capabilities, Completion, Inputs, ModelCall, StreamOutcome
from cbgate.text import token_count
from cbgate.providers.token_estimate import TokenEstimator
from cbgate.providers.upstream_base import UNREADABLE, UpstreamAdapter
from cbgate.providers.upstream_http import Endpoint, Timeouts, UpstreamClient


def chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def reported_usage(body: dict) -> Usage | None:
    """The usage an answer reports, or None when it reports none. Counts that are not non-negative
    integers raise ValueError: they are the upstream's garbage, never something to bill or to settle."""
    usage = body.get("usage")
    if usage is None:
        return None
    if not isinstance(usage, dict):
        raise ValueError("usage must be an object")
    if "prompt_tokens" not in usage:
        return None
    prompt = token_count(usage.get("prompt_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    # OpenAI's cached prompt tokens: billed at the cache price, so they must not pass as uncached input
    cached = token_count((details.get("cached_tokens") or 0) if isinstance(details, dict) else 0)
    return Usage(prompt, token_count(usage.get("completion_tokens") or 0), cache_read_tokens=min(cached, prompt))


_STRING_OR_NONE = frozenset({"role", "reasoning_content", "refusal", "content"})  # content may be a list too


def _check_part(part: Any, where: str) -> None:
    """A choice's message or delta, held to OpenAI's shape as we hold a client's request."""
    if type(part) is dict:  # every event's delta: one pass over its few keys when each is a string or null
        for key, value in part.items():
            if key in _STRING_OR_NONE:
                if value is None or type(value) is str:
                    continue
            elif value is None or key != "tool_calls":
                continue
            break  # a list, a number, tool calls...: the full check below, in its order
        else:
            return
    _check_part_fully(part, where)


def _check_part_fully(part: Any, where: str) -> None:
    if not isinstance(part, dict):
        raise ValueError(f"{where} must be an object")
    for key in ("role", "reasoning_content", "refusal"):
        if part.get(key) is not None and not isinstance(part[key], str):
            raise ValueError(f"{where}.{key} must be a string")
    content = part.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise ValueError(f"{where}.content must be a string")
    calls = part.get("tool_calls")
    if calls is None:
        return
    if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
        raise ValueError(f"{where}.tool_calls must be a list of objects")
    for call in calls:
        function = call.get("function")
        if function is None:
            continue
        if not isinstance(function, dict) or any(
                function.get(k) is not None and not isinstance(function[k], str) for k in ("name", "arguments")):
            raise ValueError(f"{where}.tool_calls[].function must be an object of strings")


def check_choices(choices: Any, key: str) -> list:
    """An answer's `choices` (key: "message") or a stream chunk's (key: "delta"), or ValueError."""
    if not isinstance(choices, list):
        raise ValueError("choices must be a list")
    for choice in choices:
        if not isinstance(choice, dict):
            raise ValueError("each choice must be an object")
        if key in choice or key == "message":
            _check_part(choice.get(key), f"choices[].{key}")
        if choice.get("finish_reason") is not None and not isinstance(choice["finish_reason"], str):
            raise ValueError("choices[].finish_reason must be a string")
    return choices


def counted_usage(timings: Any) -> Usage | None:
    """Exact counts so far from llama.cpp server's `timings` (sent with every token when the request sets
    `timings_per_token`): prompt tokens evaluated plus those reused from its cache, tokens generated."""
    if not isinstance(timings, dict):
        return None
    try:
        return Usage(int(timings.get("prompt_n", 0)) + int(timings.get("cache_n", 0)), int(timings["predicted_n"]))
    except (KeyError, TypeError, ValueError):
        return None


def _delta_text(delta: dict, parts: list[str]) -> bool:
    """Collect what an estimate would count; True when the delta carries generated output."""
    found = False
    for key in ("content", "reasoning_content"):
        text = delta.get(key)
        if text and isinstance(text, str):
            parts.append(text)
            found = True
    for call in delta.get("tool_calls") or ():
        function = call.get("function")
        if function:
            parts.append((function.get("name") or "") + (function.get("arguments") or ""))
            found = True
    return found


_TEXT_KEYS = frozenset({"content", "reasoning_content"})  # a delta's text an estimate counts, besides tool calls


def note_stream_choices(choices: Any, outcome: StreamOutcome, parts: list[str]) -> bool:
    """A stream chunk's `choices`, checked as `check_choices(choices, "delta")` checks them and noted in the same
    pass: the text an estimate would count, the first token's time, finish reasons. True when one of them
    finishes. Raises ValueError for the upstream's garbage. (One pass: asked of every event, and checking, then
    noting, cost a second loop over the choices and the keys of each delta.)"""
    if not isinstance(choices, list):
        raise ValueError("choices must be a list")
    finishes = False
    for choice in choices:
        if not isinstance(choice, dict):
            raise ValueError("each choice must be an object")
        delta = choice.get("delta")
        if (delta is not None or "delta" in choice) and _read_delta(delta, parts) and outcome.first_token_at is None:
            outcome.mark_token()
        finish = choice.get("finish_reason")
        if finish is not None:
            if not isinstance(finish, str):
                raise ValueError("choices[].finish_reason must be a string")
            if finish:
                outcome.finish_reason = finish
                finishes = True
    return finishes


def _read_delta(delta: Any, parts: list[str]) -> bool:
    """A delta checked as `_check_part` checks it, its text collected in the same pass over its keys; True when
    it carries generated output."""
    if type(delta) is dict:  # every event's delta: one pass when each value is a string or null
        kept = len(parts)
        found = False
        for key, value in delta.items():
            if key in _STRING_OR_NONE:
                if value is None:
                    continue
                if type(value) is str:
                    if value and key in _TEXT_KEYS:
                        parts.append(value)
                        found = True
                    continue
            elif value is None or key != "tool_calls":
                continue
            del parts[kept:]  # a list, a number, tool calls...: the full check and collection below
            break
        else:
            return found
    _check_part_fully(delta, "choices[].delta")
    return bool(delta) and _delta_text(delta, parts)


class OpenAICompatAdapter(UpstreamAdapter):
    capabilities = Capabilities(image_generation=True)

    def __init__(self, name: str, *, base_url: str, api_key: str | None, client: UpstreamClient,
                 estimator: TokenEstimator, upstream_model: str | None = None, timeouts: Timeouts | None = None,
                 guarded: bool = False, inputs: Inputs = UNDECLARED):
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        endpoint = Endpoint(name, chat_url(base_url), headers, api_key, guarded)
        super().__init__(name, endpoint, client, estimator, upstream_model=upstream_model, timeouts=timeouts,
                         inputs=inputs)
        self.models_url = endpoint.url[:-len("/chat/completions")] + "/models"
        self.images_endpoint = Endpoint(name, endpoint.url[:-len("/chat/completions")] + "/images/generations",
                                        headers, api_key, guarded)

    def _payload(self, call: ModelCall, stream: bool) -> bytes:
        raw = call.request.raw
        body = dict(raw)  # shallow: the client's own dict stays as it came, for a fallback deployment
        body["model"] = self.upstream_model or raw["model"]
        if stream:
            body["stream_options"] = {**(raw.get("stream_options") or {}), "include_usage": True}
        return orjson.dumps(body)

    async def complete(self, call: ModelCall) -> Completion:
        body = await self._call_json(self._payload(call, stream=False))
        if not body.get("choices"):
            raise ModelRequestFailed(f"upstream {self.name} answered without choices")
        try:
            choices = check_choices(body["choices"], "message")
            usage = reported_usage(body)
        except UNREADABLE as exc:
            raise self.unreadable(exc) from None
        body["model"] = call.chunks.model
        if usage is None:
            parts: list[str] = []
            for choice in choices:
                _delta_text(choice["message"], parts)
            usage = await self.estimator.usage(call.request.messages, parts)
        # the counts are ours (checked or estimated); the upstream's other details stay
        body["usage"] = {**(body.get("usage") or {}), **usage.as_dict()}
        return Completion(body, usage)

    async def generate_images(self, call: ModelCall) -> Completion:
        """The images request passes on as received (extra fields too), `model` renamed if need be."""
        body = dict(call.request.raw)
        body["model"] = self.upstream_model or body["model"]
        answer = await self._call_json(orjson.dumps(body), self.images_endpoint)
        if image_count(answer) < 1:
            raise ModelRequestFailed(f"upstream {self.name} answered without images")
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
        try:  # gpt-image models report tokens; most image upstreams report none (they are metered per image)
            counted = Usage(token_count(usage.get("input_tokens") or 0), token_count(usage.get("output_tokens") or 0))
        except ValueError:
            raise ModelRequestFailed(f"upstream {self.name} reported usage that is not a count") from None
        return Completion(answer, counted)

    async def stream(self, call: ModelCall, outcome: StreamOutcome) -> AsyncIterator[list[dict | bytes]]:
        response, reader = await self._open_stream(self._payload(call, stream=True))
        read = _StreamRead(self, call, outcome)
        try:
            while (events := await reader.next()) is not None:
                out, failure = read.batch(events)
                if out:
                    yield out  # before the failure: what came before it in the same read goes out as it would alone
                if failure is not None:
                    raise failure
                if read.done:
                    break
            if not read.done and outcome.finish_reason is None:
                raise ModelRequestFailed(f"upstream {self.name} ended the stream before it finished")
            await self.finish_response(response)
            if read.usage is None:
                await self.estimator.load()
        finally:
            response.close()  # a no-op after finish_response; otherwise stops the upstream at once
            # billed even when the stream broke off or the client left: what was produced so far
            outcome.usage = read.usage or read.counted or self.estimator.usage_now(call.request.messages, read.parts)


class _StreamRead:
    """One stream's reading state: each network read's events become one batch of chunks in a single pass
    (decoded once, checked, noted), so a read's events cost no generator step each."""
    __slots__ = ("adapter", "call", "outcome", "public", "parts", "usage", "counted", "done")

    def __init__(self, adapter: OpenAICompatAdapter, call: ModelCall, outcome: StreamOutcome):
        self.adapter = adapter
        self.call = call
        self.outcome = outcome
        self.public = call.chunks.model
        self.parts: list[str] = []
        self.usage: Usage | None = None
        self.counted: Usage | None = None  # llama.cpp's running counts, when it sends them
        self.done = False

    def batch(self, events: list) -> tuple[list[dict | bytes], ModelRequestFailed | None]:
        """The chunks for the client from one read's events, and the failure that ended it there, if one did."""
        adapter, outcome, public, parts = self.adapter, self.outcome, self.public, self.parts
        out: list[dict | bytes] = []
        for name, data in events:
            if data == b"[DONE]":
                self.done = True
                break
            try:
                chunk = adapter.decode_event(data)
            except ModelRequestFailed as exc:
                return out, exc
            if name == b"error" or chunk.get("error"):
                return out, adapter.failure_from(chunk)
            timings = chunk.pop("timings", None)
            if timings is not None:
                self.counted = counted_usage(timings) or self.counted
            choices = chunk.get("choices")
            try:
                if chunk.get("usage") is not None:
                    self.usage = reported_usage(chunk) or self.usage
                if not choices:
                    continue  # the usage chunk: the model service sends the client its own, once
                if outcome.first_token_at is None and isinstance(chunk.get("id"), str):
                    self.call.chunks.id = chunk["id"]  # so the usage chunk the model service adds matches
                finishes = note_stream_choices(choices, outcome, parts)
            except UNREADABLE as exc:
                return out, adapter.unreadable(exc)
            # a finishing chunk goes on as a dict: the model service adds the usage to it
            if timings is not None or chunk.get("model") != public or finishes:
                chunk["model"] = public
                out.append(chunk)
                if finishes and outcome.finishing is None:
                    outcome.finishing = chunk
            else:
                out.append(data)
        return out, None
