"""Stream writes: what arrives together (one upstream read, a batch) leaves in one write, head included; nothing
waits for more; a slow client stops the pulling."""
import asyncio

from cbgate.core.shutdown import ShutdownDeadline
from cbgate.errors import ModelRequestFailed
from cbgate.http.stream_pump import pump
from cbgate.protocol.chat_surface import ChatStream

MODEL = "gemma-3-270m"


def test_a_slow_stream_reaches_the_client_token_by_token(gateway):
    gateway.engine.script(token_delay=0.1)
    text = "abcdefghijklmnopqrstuvwxyz"  # "echo: " + 26 letters: 16 tokens, 1.6 s
    r = gateway.chat({"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": True},
                     stream=True)
    contents = 0
    for line in r.iter_lines():
        if line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
            contents += 1
            if contents == 3:
                break
    assert gateway.engine.generated() < 16  # the third token came while the engine was still generating
    r.close()


class Meter:
    cut = None


class Source:
    """A model stream's batches, optionally waiting on `gate` before the batch numbered `pause_before`."""

    def __init__(self, batches, gate=None, pause_before=None, fail=None):
        self.meter = Meter()
        self.closed = False
        self._items = self._gen(batches, gate, pause_before, fail)

    async def _gen(self, batches, gate, pause_before, fail):
        for i, batch in enumerate(batches):
            if gate is not None and i == pause_before:
                await gate.wait()  # like an upstream read that has to wait for the network
            yield batch
        if fail is not None:
            raise fail

    def __aiter__(self):
        return self._items

    async def aclose(self):
        self.closed = True
        await self._items.aclose()


class Exchange:
    """Records the pump's sends; `send_waits` makes each body send wait for `release` (a slow client)."""
    request_id = "req-1"

    def __init__(self, release: asyncio.Event | None = None):
        self.sends: list[bytes] = []
        self.release = release

    async def start(self, status, headers):
        self.status = status

    async def send(self, message):
        self.sends.append(message["body"])
        if self.release is not None and message.get("more_body"):
            await self.release.wait()


def _chunk(text: str) -> bytes:
    return b'{"choices":[{"index":0,"delta":{"content":"%s"}}]}' % text.encode()


def test_a_batch_leaves_in_one_send_and_the_next_as_soon_as_it_comes():
    async def scenario():
        gate = asyncio.Event()
        source = Source([[_chunk("a"), _chunk("b"), _chunk("c")], [_chunk("d")]], gate, pause_before=1)
        ex = Exchange()
        task = asyncio.create_task(pump(ex, source, ChatStream("req-1"), ShutdownDeadline(30.0)))
        while not ex.sends:
            await asyncio.sleep(0)
        first = list(ex.sends)  # sent before the second read came: nothing waited for it
        gate.set()
        await task
        return first, ex.sends, source.closed

    first, sends, closed = asyncio.run(scenario())
    assert first == [b"data: " + _chunk("a") + b"\n\ndata: " + _chunk("b") + b"\n\ndata: " + _chunk("c") + b"\n\n"]
    assert sends[1:] == [b"data: " + _chunk("d") + b"\n\n", b"data: [DONE]\n\n"]
    assert closed


def test_a_failure_arrives_after_the_events_before_it():
    async def scenario():
        source = Source([[_chunk("a"), _chunk("b")]], fail=ModelRequestFailed("upstream broke"))
        ex = Exchange()
        await pump(ex, source, ChatStream("req-1"), ShutdownDeadline(30.0))
        return ex.sends

    sends = asyncio.run(scenario())
    assert sends[0] == b"data: " + _chunk("a") + b"\n\ndata: " + _chunk("b") + b"\n\n"
    assert b"upstream broke" in sends[1] and b"[DONE]" not in sends[1]


def test_a_slow_client_stops_the_pulling_and_a_cancel_closes_the_stream():
    pulled = []

    async def endless():
        n = 0
        while True:
            n += 1
            pulled.append(n)
            yield [_chunk(str(n))]

    async def scenario():
        source = Source([])
        source._items = endless()
        ex = Exchange(release=asyncio.Event())  # the client never reads
        task = asyncio.create_task(pump(ex, source, ChatStream("req-1"), ShutdownDeadline(30.0)))
        for _ in range(20):
            await asyncio.sleep(0)
        task.cancel()  # the client left (the exchange cancels the request's task)
        try:
            await task
        except asyncio.CancelledError:
            pass
        return source.closed

    assert asyncio.run(scenario())
    assert pulled == [1]  # one batch taken, then the pump waits on the client, pulling nothing more
