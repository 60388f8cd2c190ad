"""The gateway's logs: plain lines for a terminal or one JSON object a line (`--log-format json`), for our
own messages, uvicorn's and the access log alike. The access log has one line per request."""
from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time

import orjson

ACCESS = "cbgate.access"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line; an access line carries its fields (status, code, model, ...) as keys."""

    _second: tuple[int, str] = (-1, "")  # the last second formatted, and its text (one tuple: thread-safe)

    def format(self, record: logging.LogRecord) -> str:
        second = self._second
        if second[0] != int(record.created):  # a strftime per second, not per line
            second = self._second = (int(record.created),
                                     time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)))
        entry = {"time": second[1] + f".{int(record.msecs):03d}Z", "level": record.levelname.lower(), "logger": record.name, "pid": record.process,
                 "message": record.getMessage()}
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def log_format_from_env() -> str:
    value = os.environ.get("CBGATE_LOG_FORMAT", "text").lower()
    return value if value in FORMATS else "text"


def level_from_env() -> str:
    return os.environ.get("CBGATE_LOG_LEVEL", "info").upper()


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def setup_logging(log_format: str | None = None, level: str | None = None) -> None:
    """Configure the root logger once per process (the serve command and each worker)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format or log_format_from_env()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or level_from_env())
    access = logging.getLogger(ACCESS)
    access.disabled = os.environ.get("CBGATE_ACCESS_LOG", "on").lower() in ("off", "0", "false", "no")


def uvicorn_log_config(log_format: str) -> dict:
    """uvicorn's loggers go through the same formatter as ours, so `--log-format json` is all JSON."""
    fmt = {"()": "cbgate.logs.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    return {"version": 1, "disable_existing_loggers": False, "formatters": {"default": fmt},
            "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default",
                                     "stream": "ext://sys.stderr"}},
            "loggers": {"uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
                        "uvicorn.error": {"level": "INFO"}}}


def printable(text: str, limit: int = 200) -> str:
    """A client-chosen string made safe for one log line: control characters escaped, length capped."""
    text = text[:limit]
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def access_line(status: int, code: str | None, request_id: str, latency_ms: float, *, method: str = "",
                path: str = "", model: str = "", prompt_tokens: int = 0, completion_tokens: int = 0,
                env: str = "") -> None:
    """One request, one line: `200 OK POST /v1/ai/cloudbase/chat/completions model=... tokens=12+30 ...`.
    Only queued here (the event loop's share is one append); ACCESS_WRITER makes and writes the line."""
    if _ACCESS_LOG.disabled or not _ACCESS_LOG.isEnabledFor(logging.INFO):
        return
    ACCESS_WRITER.put((time.time(), status, code, request_id, latency_ms, method, path, model, prompt_tokens,
                       completion_tokens, env))


ACCESS_MESSAGE = "%s %s%s%s latency=%.1fms request=%s"


def _access_record(log: logging.Logger, entry: tuple, template: dict | None = None) -> logging.LogRecord:
    """The access line's log record. With `template` (a record's attributes from `_record_template`), the
    record is that copy with this line's own message, arguments, fields and time: what `makeRecord` would
    give, without its per-record look-ups of the thread, the process and the source file."""
    created, status, code, request_id, latency_ms, method, path, model, prompt, completion, env = entry
    path, model = printable(path), printable(model)  # client strings: no line breaks or escapes in a log line
    fields = {"status": status, "code": code or "OK", "method": method, "path": path, "env": env,
              "model": model, "prompt_tokens": prompt, "completion_tokens": completion,
              "latency_ms": round(latency_ms, 1), "request_id": request_id}
    where = f" {method} {path}" if method else ""
    what = f" model={model} tokens={prompt}+{completion}" if model else ""
    args = (status, code or "OK", where, what, latency_ms, request_id)
    if template is None:
        record = log.makeRecord(ACCESS, logging.INFO, __file__, 0, ACCESS_MESSAGE, args, None,
                                extra={"fields": fields})
    else:
        record = _new_record(logging.LogRecord)
        record.__dict__.update(template)
        record.args, record.fields = args, fields
    record.created, record.msecs = created, (created % 1) * 1000  # when the request ended, not when written
    return record


_new_record = object.__new__


def _record_template(log: logging.Logger) -> dict | None:
    """The attributes every access record of one flush shares (made now, on the writing thread), or None
    where the records are made differently (another record factory or Logger class): each is then made by
    `makeRecord` itself."""
    if logging.getLogRecordFactory() is not logging.LogRecord or type(log).makeRecord is not logging.Logger.makeRecord:
        return None
    return vars(log.makeRecord(ACCESS, logging.INFO, __file__, 0, ACCESS_MESSAGE, (), None, extra={"fields": None}))


class AccessWriter:
    """Writes the access log from its own thread, a batch of lines per write, so that neither making the
    log records nor a slow stderr (a pipe, a terminal) is on the event loop's path. The lines, their
    formats and their handlers are the same as logging them directly; `flush()` (at shutdown and at exit)
    writes whatever is still queued, so the log is complete when the process ends normally.

    The queue is bounded: a log sink that stops reading would otherwise grow it without end. Past
    MAX_QUEUED lines, new ones are counted instead, and the count is logged once the sink reads again."""

    BATCH_WAIT = 0.05  # seconds the thread lets lines gather after the first one: one write, and one
    # wakeup that takes the GIL from the event loop, for many lines
    MAX_QUEUED = 200_000

    def __init__(self):
        self._queued: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._writing = threading.Lock()  # the thread and flush() never write at once (order is kept)
        self._thread: threading.Thread | None = None
        self._dropped = 0
        atexit.register(self.flush)

    def put(self, entry: tuple) -> None:
        if len(self._queued) >= self.MAX_QUEUED:
            self._dropped += 1
            return
        self._queued.append(entry)  # before looking at the event: the thread's drain then always sees it
        if not self._wake.is_set():
            if self._thread is None or not self._thread.is_alive():
                self._start()
            self._wake.set()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cbgate-access-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(self.BATCH_WAIT)
            try:
                self.flush()
            except Exception:  # a broken handler must not end the thread (the next lines still try)
                logging.getLogger("cbgate").exception("writing the access log failed")

    def flush(self) -> None:
        """Write every queued line now (any thread; the shutdown path calls it last)."""
        with self._writing:
            log = logging.getLogger(ACCESS)
            while self._queued:
                template = _record_template(log)
                batch = []
                while self._queued and len(batch) < 1000:
                    batch.append(_access_record(log, self._queued.popleft(), template))
                _emit(log, batch)
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                log.warning("%d access log lines were dropped while the log's output did not keep up", dropped)


def _emit(log: logging.Logger, records: list[logging.LogRecord]) -> None:
    """What `log.handle` does for each record, with one write per plain stream handler for the batch."""
    if log.filters:
        records = [r for r in records if log.filter(r)]
    logger: logging.Logger | None = log
    while logger is not None:
        for handler in logger.handlers:
            if handler.filters:
                passing = [r for r in records if r.levelno >= handler.level and handler.filter(r)]
            else:
                passing = [r for r in records if r.levelno >= handler.level]
            if type(handler) in (logging.StreamHandler, logging.FileHandler) and passing:
                try:
                    text = "".join(handler.format(r) + handler.terminator for r in passing)
                    with handler.lock:
                        handler.stream.write(text)
                        handler.flush()
                except Exception:  # as StreamHandler.emit does: say so on stderr, never raise
                    handler.handleError(passing[0])
            else:  # other handlers (pytest's capture, a syslog handler...) get their records one by one
                for record in passing:
                    handler.handle(record)
        logger = logger.parent if logger.propagate else None


ACCESS_WRITER = AccessWriter()
_ACCESS_LOG = logging.getLogger(ACCESS)  # getLogger takes logging's module lock: looked up once
