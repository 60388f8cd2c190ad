"""One llama.cpp model and the thread that runs it, fed from a bounded queue.

The event loop never waits on llama.cpp: jobs go to a worker thread, which reports back through an
asyncio queue. A job's `cancel` event stops generation at the next token (client disconnect).
"""
from __future__ import annotations

import asyncio
import codecs
import os
import queue
import random
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cbgate.errors import CloudBaseError, ConcurrencyExceeded, ModelParamInvalid
from cbgate.providers.local.stops import StopScanner
from cbgate.providers.local.template import choose_template


@dataclass
class Sampling:
    temperature: float
    top_p: float
    max_tokens: int
    stop: list[str]
    seed: int | None = None


@dataclass
class Job:
    messages: list[dict]
    sampling: Sampling
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)
    # Written by the engine thread, so a caller that stopped listening can still bill what was generated.
    started: bool = False
    produced: int = 0
    finished: threading.Event = field(default_factory=threading.Event)

    def emit(self, *event) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class LocalEngine:
    """Events a job receives: ("start", prompt_tokens), ("text", str)..., then ("end", finish_reason,
    completion_tokens) or ("error", CloudBaseError)."""

    def __init__(self, model_path: Path, *, n_ctx: int = 4096, n_threads: int | None = None,
                 queue_limit: int = 16, llama_factory=None):
        self.model_path = model_path
        self.llama_factory = llama_factory  # tests swap llama.cpp for a scripted fake
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2))
        self.queue_limit = queue_limit
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.llm = None

    def load(self) -> None:
        if self.llama_factory is None:
            from llama_cpp import Llama as llama_factory
        else:
            llama_factory = self.llama_factory
        print(f"cbgate: loading {self.model_path.name} into the embedded engine ...", file=sys.stderr, flush=True)
        self.llm = llama_factory(str(self.model_path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False)
        eos = self.llm.detokenize([self.llm.token_eos()]).decode("utf-8", "ignore")
        bos = self.llm.detokenize([self.llm.token_bos()]).decode("utf-8", "ignore")
        self.render, stop_texts = choose_template(self.llm.metadata, eos, bos)
        self.stop_ids = {self.llm.token_eos()}
        for text in stop_texts:
            ids = self.llm.tokenize(text.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                self.stop_ids.add(ids[0])
        self._thread = threading.Thread(target=self._work, name="cbgate-engine", daemon=True)
        self._thread.start()
        print("cbgate: embedded engine ready", file=sys.stderr, flush=True)

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._pending >= self.queue_limit:
                raise ConcurrencyExceeded(
                    f"the embedded engine has {self._pending} requests waiting; try again shortly")
            self._pending += 1
        self._jobs.put(job)

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                if not job.cancel.is_set():
                    self._generate(job)
            except CloudBaseError as exc:
                job.emit("error", exc)
            except Exception as exc:  # llama.cpp failures must reach the caller, not kill the thread
                job.emit("error", CloudBaseError(f"the embedded engine failed: {exc}"))
            finally:
                with self._lock:
                    self._pending -= 1
                job.finished.set()

    def _generate(self, job: Job) -> None:
        llm, sampling = self.llm, job.sampling
        prompt = self.render(job.messages)
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        room = self.n_ctx - len(tokens)
        if room < 1:
            raise ModelParamInvalid(
                f"invalid parameter `messages`: the prompt is {len(tokens)} tokens, over the model's "
                f"context of {self.n_ctx}")
        max_tokens = min(sampling.max_tokens, room)
        job.started = True
        job.emit("start", len(tokens))
        llm.set_seed(sampling.seed if sampling.seed is not None else random.getrandbits(31))
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        scanner = StopScanner(sampling.stop)
        produced, finish, context = 0, "length", list(tokens)
        for token in llm.generate(tokens, temp=sampling.temperature, top_p=sampling.top_p, reset=True):
            if token in self.stop_ids:
                finish = "stop"
                break
            produced += 1  # generated, so billed, even if the client left while it was computed
            job.produced = produced
            if job.cancel.is_set():
                finish = "cancelled"
                break
            # The incremental decoder keeps a split multi-byte character until its last byte arrives.
            text, hit = scanner.feed(decoder.decode(llm.detokenize([token], prev_tokens=context)))
            if text:
                job.emit("text", text)
            if hit:
                finish = "stop"
                break
            if produced >= max_tokens:
                break
            context.append(token)
        tail = scanner.flush() + decoder.decode(b"", final=True)
        if tail:
            job.emit("text", tail)
        job.emit("end", finish, produced)
