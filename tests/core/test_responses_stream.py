"""A stream whose client left before its first event still gives its slot and quota back: the one pump
closes (and so meters) the stream however the writing ended."""
import asyncio

from cbgate.core.auth import Principal
from cbgate.core.metering import MeteredStream, Metering
from cbgate.core.shutdown import ShutdownDeadline
from cbgate.http.stream_pump import pump
from cbgate.protocol.chat_request import parse_chat_request
from cbgate.protocol.responses_render import RESPONSES
from cbgate.protocol.responses_request import parse_responses_request

PRINCIPAL = Principal("team-a", "key-a", "server")
REQUEST = parse_chat_request({"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": True})


class GoneClient:
    """An exchange whose client left: the first write fails."""
    request_id = "req-1"

    async def start(self, status, headers):
        raise ConnectionResetError("the client left")

    async def send(self, message):
        raise ConnectionResetError("the client left")


def test_a_stream_whose_client_left_before_its_first_event_finishes_the_meter_once():
    finished = []

    async def model_chunks():
        yield [{"choices": [{"index": 0, "delta": {"content": "hi"}}]}]  # a model stream yields batches

    async def main():
        meter = Metering().start(PRINCIPAL, "cloudbase", REQUEST, "req-1")
        meter.on_finish(finished.append)  # what releases the slot and settles the quota reservation
        chunks = MeteredStream(model_chunks(), meter)
        render = RESPONSES.stream(parse_responses_request({"model": "m1", "input": "hi", "stream": True}), "req-1")
        stored = []

        async def after(body):
            stored.append(body)
        try:
            await pump(GoneClient(), chunks, render, ShutdownDeadline(30.0), after)
        except ConnectionResetError:
            pass
        await chunks.aclose()
        return stored
    assert asyncio.run(main()) == []  # a stream that never finished is not stored
    assert len(finished) == 1
