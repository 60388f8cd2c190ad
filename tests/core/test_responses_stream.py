"""A Responses stream whose client left before its first event still gives its slot and quota back."""
import asyncio

from cbgate.core.auth import Principal
from cbgate.core.metering import MeteredStream, Metering
from cbgate.core.responses import ResponseEvents
from cbgate.protocol.chat_request import parse_chat_request
from cbgate.protocol.responses_render import ResponseStreamRenderer
from cbgate.protocol.responses_request import parse_responses_request

PRINCIPAL = Principal("team-a", "key-a", "server")
REQUEST = parse_chat_request({"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": True})


def test_closing_a_stream_whose_events_never_started_finishes_the_meter_once():
    finished = []

    async def model_chunks():
        yield {"choices": [{"index": 0, "delta": {"content": "hi"}}]}

    async def main():
        meter = Metering().start(PRINCIPAL, "cloudbase", REQUEST, "req-1")
        meter.on_finish(finished.append)  # what releases the slot and settles the quota reservation
        chunks = MeteredStream(model_chunks(), meter)

        async def events():
            try:
                async for chunk in chunks:
                    yield "chunk", chunk
            finally:
                await chunks.aclose()
        renderer = ResponseStreamRenderer("resp_1", parse_responses_request({"model": "m1", "input": "hi"}))
        stream = ResponseEvents(events(), renderer, chunks)
        await stream.aclose()  # the client left before the first event was asked for
        await stream.aclose()
    asyncio.run(main())
    assert len(finished) == 1
