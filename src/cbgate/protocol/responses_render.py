"""The Responses wire format of an answer: the Response object (from a canonical completion) and the
Responses event stream (from canonical chunks), failures included."""
from __future__ import annotations

import time
from typing import Any

import orjson

from cbgate.errors import CloudBaseError, error_body
from cbgate.protocol import sse
from cbgate.protocol.responses_request import ResponsesRequest, new_id, parse_responses_request
from cbgate.protocol.surface import Surface

Event = tuple[str, dict]
_DELTA_EVENT = {"message": "response.output_text.delta", "reasoning": "response.reasoning_text.delta"}


def response_usage(usage: dict | None) -> dict:
    usage = usage or {}
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


def response_object(resp_id: str, req: ResponsesRequest, created_at: int, *, status: str, output: list[dict],
                    usage: dict | None = None, error: dict | None = None, finish: str | None = None) -> dict:
    incomplete = {"reason": "max_output_tokens"} if finish == "length" and status != "failed" else None
    return {
        "id": resp_id, "object": "response", "created_at": created_at,
        "status": "incomplete" if incomplete and status == "completed" else status,
        "model": req.model, "output": output, "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens, "temperature": req.temperature, "top_p": req.top_p,
        "tools": req.tools, "tool_choice": req.tool_choice or "auto",
        "parallel_tool_calls": req.parallel_tool_calls is not False,
        "previous_response_id": req.previous_response_id, "store": req.store, "truncation": req.truncation,
        "metadata": req.metadata, "text": {"format": req.text_format or {"type": "text"}}, "user": req.user,
        "usage": response_usage(usage) if usage is not None else None, "error": error,
        "incomplete_details": incomplete,
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict:
    content = [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def _reasoning_item(item_id: str, text: str) -> dict:
    return {"type": "reasoning", "id": item_id, "summary": [],
            "content": [{"type": "reasoning_text", "text": text}] if text else []}


def output_items(message: dict) -> list[dict]:
    """The output items of a canonical assistant message."""
    items = []
    if message.get("reasoning_content"):
        items.append(_reasoning_item(new_id("rs"), message["reasoning_content"]))
    if message.get("content") or not message.get("tool_calls"):
        items.append(_message_item(new_id("msg"), message.get("content") or ""))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        items.append(_call_item(new_id("fc"), call.get("id") or new_id("call"), function.get("name", ""),
                                function.get("arguments") or ""))
    return items


def failure(err: CloudBaseError) -> dict:
    return {"code": err.code, "message": err.message}


class ResponseStreamRenderer:
    """Canonical chunks in, Responses events out. Each output item opens when its first delta arrives
    and is done when another begins or the answer ends."""

    def __init__(self, resp_id: str, req: ResponsesRequest, created_at: int | None = None):
        self.resp_id = resp_id
        self.req = req
        self.created_at = created_at or int(time.time())
        self.sequence = 0
        self.output: list[dict] = []  # finished items
        self.open: dict | None = None  # {"kind", "key", "item", "text"}
        self.finish: str | None = None
        self.usage: dict | None = None

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return kind, event

    def _snapshot(self, status: str, **extra) -> dict:
        return response_object(self.resp_id, self.req, self.created_at, status=status, output=list(self.output),
                               **extra)

    def start(self) -> list[Event]:
        snapshot = self._snapshot("in_progress")  # the same object in both events (each is dumped as it is)
        return [self._event("response.created", response=snapshot),
                self._event("response.in_progress", response=snapshot)]

    def feed(self, chunk: dict | bytes) -> list[Event]:
        events: list[Event] = []
        self.feed_into(chunk, events)
        return events

    def feed_into(self, chunk: dict | bytes, events: list, framed: bool = False) -> None:
        """`feed`, appending to `events` (a batch's chunks fill one list, framed at once). `framed`: text
        deltas go in as their framed bytes (`sse.named_events` passes them on), the same bytes `feed`'s
        event would frame to, built without a dict and its encoding (most events of a stream)."""
        if isinstance(chunk, bytes):
            chunk = orjson.loads(chunk)
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta")
            if delta:
                reasoning, content = delta.get("reasoning_content"), delta.get("content")
                if reasoning:
                    self._text("reasoning", reasoning, events, framed)
                if content:
                    self._text("message", content, events, framed)
                for call in delta.get("tool_calls") or ():
                    events += self._call(call)
            finish = choice.get("finish_reason")
            if finish:
                self.finish = finish

    def _begin(self, kind: str, key: Any, item: dict) -> list[Event]:
        events = self._end()
        self.open = {"kind": kind, "key": key, "item": item, "text": []}
        index = len(self.output)
        events.append(self._event("response.output_item.added", output_index=index, item=item))
        if kind == "message":
            events.append(self._event("response.content_part.added", item_id=item["id"], output_index=index,
                                      content_index=0, part={"type": "output_text", "text": "", "annotations": []}))
        return events

    def _text(self, kind: str, text: str, events: list, framed: bool = False) -> None:
        """A text delta (most events of a stream): its event built directly, no keyword dicts; or, `framed`,
        its bytes from the open item's framing."""
        if self.open is None or self.open["kind"] != kind:
            item = (_message_item(new_id("msg"), "", "in_progress") if kind == "message"
                    else _reasoning_item(new_id("rs"), ""))
            events += self._begin(kind, None, item)
        opened = self.open
        opened["text"].append(text)
        if framed:
            framing = opened.get("framing") or self._delta_framing(kind)
            events.append(framing % (self.sequence, orjson.dumps(text)))
        else:
            name = _DELTA_EVENT[kind]
            events.append((name, {"type": name, "sequence_number": self.sequence, "item_id": opened["item"]["id"],
                                  "output_index": len(self.output), "content_index": 0, "delta": text}))
        self.sequence += 1

    def _delta_framing(self, kind: str) -> bytes:
        """The open item's text delta event, framed, with `%d` for its sequence number and `%s` for its text
        (encoded): the keys in the order of `_text`'s dict, as orjson writes them."""
        name = _DELTA_EVENT[kind]
        item_id = orjson.dumps(self.open["item"]["id"]).replace(b"%", b"%%")
        index = b"%d" % len(self.output)
        framing = self.open["framing"] = (
            sse.head(name) + b'{"type":' + orjson.dumps(name) + b',"sequence_number":%d,"item_id":' + item_id
            + b',"output_index":' + index + b',"content_index":0,"delta":%s}\n\n')
        return framing

    def _call(self, call: dict) -> list[Event]:
        events = []
        function = call.get("function") or {}
        key = call.get("index", 0)
        if self.open is None or self.open["kind"] != "function_call" or self.open["key"] != key:
            item = _call_item(new_id("fc"), call.get("id") or new_id("call"), function.get("name") or "", "",
                              "in_progress")
            events += self._begin("function_call", key, item)
        if function.get("arguments"):
            self.open["text"].append(function["arguments"])
            events.append(self._event("response.function_call_arguments.delta", item_id=self.open["item"]["id"],
                                      output_index=len(self.output), delta=function["arguments"]))
        return events

    def _end(self) -> list[Event]:
        if self.open is None:
            return []
        kind, item, text = self.open["kind"], self.open["item"], "".join(self.open["text"])
        self.open = None
        index = len(self.output)
        events = []
        if kind == "message":
            part = {"type": "output_text", "text": text, "annotations": []}
            item = _message_item(item["id"], text)
            events += [self._event("response.output_text.done", item_id=item["id"], output_index=index,
                                   content_index=0, text=text),
                       self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                   content_index=0, part=part)]
        elif kind == "reasoning":
            item = _reasoning_item(item["id"], text)
            events.append(self._event("response.reasoning_text.done", item_id=item["id"], output_index=index,
                                      content_index=0, text=text))
        else:
            item = {**item, "arguments": text, "status": "completed"}
            events.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                      output_index=index, name=item["name"], arguments=text))
        self.output.append(item)
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        return events

    def finish_events(self) -> tuple[list[Event], dict]:
        """After the last chunk: the open item's done events and response.completed (or .incomplete when
        the answer hit max_output_tokens); also returns the final Response object."""
        events = self._end()
        if not self.output:  # an empty answer is still one (empty) message
            events += self._begin("message", None, _message_item(new_id("msg"), "", "in_progress")) + self._end()
        final = self._snapshot("completed", usage=self.usage, finish=self.finish)
        name = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        return events + [self._event(name, response=final)], final

    def failure_events(self, err: CloudBaseError, request_id: str) -> list[Event]:
        """A failure after the stream began: response.failed, then an `error` event that carries the
        CloudBase body (OpenAI SDKs raise on it)."""
        self.open = None
        failed = self._snapshot("failed", error=failure(err), usage=self.usage)
        body = error_body(err, request_id)
        return [self._event("response.failed", response=failed),
                self._event("error", code=err.code, message=err.message, param=None,
                            requestId=request_id, error=body["error"])]


class ResponsesStream:
    """The Responses event stream, framed; `final` is the Response object once the stream finished (what
    the surface's after-hook stores)."""
    __slots__ = ("renderer", "request_id", "final")

    def __init__(self, req: ResponsesRequest, request_id: str):
        self.renderer = ResponseStreamRenderer(new_id("resp"), req)
        self.request_id = request_id
        self.final: dict | None = None

    def start(self) -> bytes:
        return sse.named_events(self.renderer.start())

    def feed(self, chunk: dict | bytes) -> bytes:
        return sse.named_events(self.renderer.feed(chunk))

    def feed_batch(self, chunks: list) -> bytes:
        events: list = []
        for chunk in chunks:
            self.renderer.feed_into(chunk, events, framed=True)
        return sse.named_events(events)

    def finish(self) -> bytes:
        events, self.final = self.renderer.finish_events()
        return sse.named_events(events)

    def failure(self, err: CloudBaseError) -> bytes:
        return sse.named_events(self.renderer.failure_events(err, self.request_id))


class ResponsesSurface(Surface[ResponsesRequest]):
    """OpenAI Responses. Its model call needs the stored conversation, so its turn comes from the core's
    hook (core/responses.py `ResponsesService.turn`), which also stores the answer after it."""
    name = "responses"

    def parse(self, body: dict) -> ResponsesRequest:
        return parse_responses_request(body)

    def render(self, req: ResponsesRequest, answer: dict, request_id: str) -> dict:
        choice = answer["choices"][0]
        return response_object(new_id("resp"), req, int(time.time()), status="completed",
                               output=output_items(choice.get("message") or {}), usage=answer.get("usage"),
                               finish=choice.get("finish_reason"))

    def stream(self, req: ResponsesRequest, request_id: str) -> ResponsesStream:
        return ResponsesStream(req, request_id)


RESPONSES = ResponsesSurface()
