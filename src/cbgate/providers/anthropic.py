"""Anthropic-protocol upstreams (the Messages API): requests and answers translated both ways for every
client but a Messages one, whose body goes up as it came and whose answer comes back as it came (the
translation still reads it, for usage and the finish reason)."""
from __future__ import annotations

from typing import AsyncIterator

import orjson

from cbgate.errors import ModelRequestFailed
from cbgate.protocol import anthropic_wire
from cbgate.protocol.chunks import NativeEvent
from cbgate.providers.base import UNDECLARED, Capabilities, Completion, Inputs, ModelCall, StreamOutcome
from cbgate.providers.token_estimate import TokenEstimator
from cbgate.providers.upstream_base import UNREADABLE, UpstreamAdapter
from cbgate.providers.upstream_http import Endpoint, Timeouts, UpstreamClient

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Messages requires max_tokens; OpenAI clients often leave it out


def messages_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if base.endswith("/messages"):
        return base
    return base + ("/messages" if base.endswith("/v1") else "/v1/messages")


class AnthropicAdapter(UpstreamAdapter):
    def __init__(self, name: str, *, base_url: str, api_key: str | None, client: UpstreamClient,
                 estimator: TokenEstimator, upstream_model: str | None = None, timeouts: Timeouts | None = None,
                 guarded: bool = False, inputs: Inputs = UNDECLARED, max_tokens: int = DEFAULT_MAX_TOKENS,
                 api_version: str = API_VERSION):
        headers = {"Content-Type": "application/json", "anthropic-version": api_version}
        if api_key:
            headers["x-api-key"] = api_key
        endpoint = Endpoint(name, messages_url(base_url), headers, api_key, guarded)
        super().__init__(name, endpoint, client, estimator, upstream_model=upstream_model, timeouts=timeouts,
                         inputs=inputs)
        self.max_tokens = max_tokens
        self.capabilities = Capabilities(default_max_tokens=max_tokens)  # what a budget reserves without one
        self.models_url = endpoint.url[:-len("/messages")] + "/models"

    def _payload(self, call: ModelCall, stream: bool) -> bytes:
        model = self.upstream_model or call.request.model
        native = call.request.anthropic_body
        if native is not None:  # a Messages client: its body passes through (cache_control, thinking, top_k...)
            return orjson.dumps({**native, "model": model, "stream": stream})
        return orjson.dumps(anthropic_wire.to_request(call.request.raw, model, self.max_tokens, stream))

    async def complete(self, call: ModelCall) -> Completion:
        body = await self._call_json(self._payload(call, stream=False))
        if body.get("type") not in (None, "message") or "content" not in body:
            raise self.failure_from(body)
        try:
            completion, usage, pieces = anthropic_wire.from_message(body, call.chunks)
        except UNREADABLE as exc:
            raise self.unreadable(exc) from None
        if usage is None:
            usage = await self.estimator.usage(call.request.messages, pieces)
            completion["usage"] = usage.as_dict()
        return Completion(completion, usage, native=body if call.request.anthropic_body is not None else None)

    async def stream(self, call: ModelCall, outcome: StreamOutcome) -> AsyncIterator[list[dict | NativeEvent]]:
        response, reader = await self._open_stream(self._payload(call, stream=True))
        translator = anthropic_wire.StreamTranslator(call.chunks)
        native = call.request.anthropic_body is not None  # a Messages client: its events pass through
        try:
            while (events := await reader.next()) is not None:
                out, failure = self._batch(events, translator, native, outcome)
                if out:
                    yield out  # before the failure: what came before it in the same read goes out as it would alone
                if failure is not None:
                    raise failure
                if translator.finished:
                    break
            if not translator.finished and translator.finish_reason is None:
                raise ModelRequestFailed(f"upstream {self.name} ended the stream before it finished")
            await self.finish_response(response)
            if translator.usage() is None:
                await self.estimator.load()
        finally:
            response.close()
            outcome.finish_reason = translator.finish_reason
            outcome.usage = translator.usage() or self.estimator.usage_now(call.request.messages, translator.parts)

    def _batch(self, events: list, translator: anthropic_wire.StreamTranslator, native: bool,
               outcome: StreamOutcome) -> tuple[list[dict | NativeEvent], ModelRequestFailed | None]:
        """The chunks (or, for a Messages client, its own events) from one read's events, and the failure that
        ended them there, if one did. The finish reason is noted before the batch goes on: the model service
        holds a finishing chunk back by it."""
        out: list[dict | NativeEvent] = []
        try:
            for name, data in events:
                event = self.decode_event(data)
                if name == b"error" or event.get("type") == "error":
                    return out, self.failure_from(event)
                try:
                    chunk = translator.feed(event)
                except UNREADABLE as exc:
                    return out, self.unreadable(exc)
                if chunk is not None:
                    delta = chunk["choices"][0]["delta"]
                    if outcome.first_token_at is None and delta and "role" not in delta:
                        outcome.mark_token()
                    if not native:
                        out.append(chunk)
                        if outcome.finishing is None and chunk["choices"][0].get("finish_reason"):
                            outcome.finishing = chunk
                if native:
                    out.append(NativeEvent("anthropic", event))
        except ModelRequestFailed as exc:  # a malformed event
            return out, exc
        finally:
            outcome.finish_reason = translator.finish_reason
        return out, None
