"""The gateway's logs: plain lines for a terminal or one JSON object a line (`--log-format json`), for our
own messages, uvicorn's and the access log alike. The access log has one line per request."""
from __future__ import annotations

import logging
import os
import time

import orjson

ACCESS = "cbgate.access"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line; an access line carries its fields (status, code, model, ...) as keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                 + f".{int(record.msecs):03d}Z", "level": record.levelname.lower(), "logger": record.name, "pid": record.process,
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
    """One request, one line: `200 OK POST /v1/ai/cloudbase/chat/completions model=... tokens=12+30 ...`."""
    log = logging.getLogger(ACCESS)
    if log.disabled or not log.isEnabledFor(logging.INFO):
        return
    path, model = printable(path), printable(model)  # client strings: no line breaks or escapes in a log line
    fields = {"status": status, "code": code or "OK", "method": method, "path": path, "env": env,
              "model": model, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
              "latency_ms": round(latency_ms, 1), "request_id": request_id}
    where = f" {method} {path}" if method else ""
    what = f" model={model} tokens={prompt_tokens}+{completion_tokens}" if model else ""
    log.info("%s %s%s%s latency=%.1fms request=%s", status, code or "OK", where, what, latency_ms, request_id,
             extra={"fields": fields})
