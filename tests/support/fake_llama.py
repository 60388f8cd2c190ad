"""A scripted stand-in for llama.cpp's `llama-server`, run by the gateway's real supervisor in place of
the real binary (stdlib only: it starts in a few tens of milliseconds).

It answers "echo: <last user text>" in tokens of at most two bytes, so multi-byte characters are split
across tokens the way byte-fallback tokenizers split them, and, like llama-server, sends a piece of text
only once its characters are whole. It speaks the parts of llama-server's API the gateway uses: /health,
/v1/chat/completions (streamed, with `timings` per token and usage), bearer-key checks, and stops
generating when the client goes away.

The test steers it through `<CBGATE_ENGINE_FAKE_DIR>/script.json`, read at every request:
`token_delay` (seconds a token), `reply_tokens` (cap on the reply), `crash_on_eval` (die by SIGSEGV on a
completion request), `crash_after_tokens` (die by SIGSEGV after generating that many tokens in all).
It writes its port to `<dir>/port` and counts on `GET /_fake/stats`: tokens generated, requests running.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CONTROL = Path(os.environ.get("CBGATE_ENGINE_FAKE_DIR", "."))


class State:
    def __init__(self, api_key: str | None, alias: str):
        self.api_key = api_key
        self.alias = alias
        self.lock = threading.Lock()
        self.generated = 0
        self.running = 0

    def script(self) -> dict:
        try:
            return json.loads((CONTROL / "script.json").read_text())
        except (OSError, ValueError):
            return {}


def crash() -> None:
    """Die by SIGSEGV here and now, as a native crash would: sent to this thread, it cannot finish its answer
    first (a signal sent to the process may be taken by another thread a moment later)."""
    signal.pthread_kill(threading.get_ident(), signal.SIGSEGV)


def prompt_tokens(messages: list[dict]) -> int:
    """Like the old scripted model: a BOS plus one token per whitespace-separated word of the Gemma prompt."""
    turns = [f"<start_of_turn>{'model' if m.get('role') == 'assistant' else 'user'}\n{m.get('content') or ''}"
             "<end_of_turn>\n" for m in messages]
    return 1 + len(("".join(turns) + "<start_of_turn>model\n").split())


def said(content) -> str:
    """A turn's text; the parts a vision or audio model is sent are each named in it, e.g. `[image_url]`."""
    if isinstance(content, list):
        return "".join(p.get("text", "") if p.get("type") == "text" else f"[{p.get('type')}]" for p in content)
    return content or ""


def reply_pieces(messages: list[dict], cap: int | None) -> list[bytes]:
    users = [m for m in messages if m.get("role") == "user"]
    data = ("echo: " + (said(users[-1].get("content")) if users else "")).encode()
    pieces = [data[i:i + 2] for i in range(0, len(data), 2)]
    return pieces[:cap] if cap is not None else pieces


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State

    def log_message(self, *args) -> None:
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path in ("/health", "/v1/health"):
            return self._json(200, {"status": "ok"})
        if self.path == "/_fake/stats":
            return self._json(200, {"generated": self.state.generated, "running": self.state.running,
                                    "pid": os.getpid()})
        self._json(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.state.api_key and self.headers.get("Authorization") != f"Bearer {self.state.api_key}":
            return self._json(401, {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}})
        if self.path != "/v1/chat/completions":
            return self._json(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})
        script = self.state.script()
        if script.get("crash_on_eval"):
            crash()
        with self.state.lock:
            self.state.running += 1
        try:
            self._complete(body, script)
        finally:
            with self.state.lock:
                self.state.running -= 1

    def _complete(self, body: dict, script: dict) -> None:
        messages = body.get("messages") or []
        n_prompt = prompt_tokens(messages)
        pieces = reply_pieces(messages, script.get("reply_tokens"))
        limit = body.get("max_tokens")
        finish = "stop"
        if limit is not None and len(pieces) > limit:
            pieces, finish = pieces[:limit], "length"
        stream = Stream(self, body, n_prompt) if body.get("stream") else None
        stops = [s for s in body.get("stop") or () if s]
        text, sent, pending, produced = "", 0, b"", 0
        for piece in pieces:
            if script.get("token_delay"):
                time.sleep(script["token_delay"])
            self._count_token(script)
            produced += 1
            pending += piece
            try:
                text, pending = text + pending.decode(), b""
            except UnicodeDecodeError:
                continue  # hold a split character until its last byte
            hits = [text.index(s) for s in stops if s in text]
            if hits:
                text, finish = text[:min(hits)], "stop"
            ready = len(text) if hits else _safe_length(text, stops)  # hold what may begin a stop string
            if stream is not None and ready > sent and not stream.send(stream.delta({"content": text[sent:ready]},
                                                                                    produced)):
                return  # the client left: stop generating, as llama-server does
            sent = max(sent, ready)
            if hits:
                break
        if stream is not None and len(text) > sent:
            stream.send(stream.delta({"content": text[sent:]}, produced))
        if stream is not None:
            stream.finish(finish, produced)
        else:
            self._json(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                             "model": body.get("model") or self.state.alias,
                             "choices": [{"index": 0, "finish_reason": finish,
                                          "message": {"role": "assistant", "content": text}}],
                             "usage": {**usage(n_prompt, produced), **script.get("usage_override", {})}})

    def _count_token(self, script: dict) -> None:
        with self.state.lock:
            self.state.generated += 1
            if script.get("crash_after_tokens") and self.state.generated >= script["crash_after_tokens"]:
                crash()


def _safe_length(text: str, stops: list[str]) -> int:
    for start in range(max(0, len(text) - max((len(s) for s in stops), default=0)), len(text)):
        if any(s.startswith(text[start:]) for s in stops):
            return start
    return len(text)


def usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class Stream:
    """One chunked text/event-stream answer in llama-server's shape."""

    def __init__(self, handler: Handler, body: dict, n_prompt: int):
        self.handler, self.body, self.n_prompt = handler, body, n_prompt
        self.model = body.get("model") or handler.state.alias
        self.timings = bool(body.get("timings_per_token"))
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        self.send(self.delta({"role": "assistant", "content": None}, 0))

    def delta(self, delta: dict, produced: int, finish: str | None = None) -> dict:
        chunk = {"choices": [{"finish_reason": finish, "index": 0, "delta": delta}], "created": int(time.time()),
                 "id": "chatcmpl-fake", "model": self.model, "system_fingerprint": "fake", "object": "chat.completion.chunk"}
        if self.timings or finish:
            chunk["timings"] = {"cache_n": 0, "prompt_n": self.n_prompt, "predicted_n": produced}
        return chunk

    def send(self, event: dict | str) -> bool:
        data = ("data: " + (event if isinstance(event, str) else json.dumps(event)) + "\n\n").encode()
        try:
            self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.handler.wfile.flush()
            return True
        except OSError:
            self.handler.close_connection = True
            return False

    def finish(self, reason: str, produced: int) -> None:
        self.send(self.delta({}, produced, reason))
        if (self.body.get("stream_options") or {}).get("include_usage"):
            chunk = self.delta({}, produced)
            chunk["choices"] = []
            chunk["usage"] = usage(self.n_prompt, produced)
            self.send(chunk)
        if self.send("[DONE]"):
            try:
                self.handler.wfile.write(b"0\r\n\r\n")
                self.handler.wfile.flush()
            except OSError:
                pass


def option(args: list[str], name: str, default: str | None = None) -> str | None:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else default


def main(args: list[str]) -> None:
    # The key comes as the real llama-server takes it from us: in its environment, never on the command line.
    Handler.state = State(os.environ.get("LLAMA_API_KEY"), option(args, "--alias", "fake"))
    server = ThreadingHTTPServer((option(args, "--host", "127.0.0.1"), int(option(args, "--port", "0"))), Handler)
    server.daemon_threads = True
    CONTROL.mkdir(parents=True, exist_ok=True)
    (CONTROL / "port.tmp").write_text(str(server.server_address[1]))
    (CONTROL / "port.tmp").replace(CONTROL / "port")
    print(f"fake llama-server listening on {server.server_address[1]} (model {option(args, '--model')})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
