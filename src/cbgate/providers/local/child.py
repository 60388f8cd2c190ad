"""One `llama-server` child process: start it on a free loopback port, wait until it has loaded the model
and evaluated a token, say clearly how it died, stop it.

The child dies with its parent (PR_SET_PDEATHSIG), so a gateway killed with -9 leaves no engine behind.
Its output goes to a log file, whose last lines explain a crash.
"""
from __future__ import annotations

import asyncio
import ctypes
import secrets
import signal
import socket
import time
from pathlib import Path

import aiohttp

from cbgate.providers.local.command import EngineOptions

LOG_ROTATE_BYTES = 20 * 1024 * 1024
HINTS = {
    signal.SIGILL: "the build uses an instruction this CPU cannot run; rebuild it with scripts/build-engine --force",
    signal.SIGSEGV: "rebuild it with scripts/build-engine --force; if that does not help, report the log",
    signal.SIGKILL: "killed from outside, often by the kernel when memory runs out (see dmesg)",
}


class EngineDied(Exception):
    """The child exited; the message says how, and what to do when that is known."""


def _find_prctl():
    """prctl, looked up now: loading a library between fork and exec can deadlock on a lock another of the
    gateway's threads held at the fork."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (AttributeError, OSError):
        return None  # not Linux: the gateway's shutdown still stops the child


_PRCTL = _find_prctl()  # set once at import, never changed
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        sig = signal.Signals(-returncode)
        hint = HINTS.get(sig)
        return f"was killed by {sig.name} ({signal.strsignal(sig)})" + (f": {hint}" if hint else "")
    return f"exited with status {returncode}"


class EngineChild:
    def __init__(self, options: EngineOptions, log_path: Path):
        self.options = options
        self.log_path = log_path
        self.api_key = secrets.token_urlsafe(24)  # only the gateway may use the engine's port
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    async def start(self) -> None:
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists() and self.log_path.stat().st_size > LOG_ROTATE_BYTES:
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        with self.log_path.open("ab") as log:
            log.write(f"\n==> cbgate starts the engine at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                *self.options.argv(self.port), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                env=self.options.environment(self.api_key), preexec_fn=_die_with_parent,
                start_new_session=True)  # a Ctrl-C in the terminal is the gateway's to handle, not the engine's
        self.started_at = time.monotonic()

    def log_tail(self, lines: int = 4) -> str:
        try:
            text = self.log_path.read_bytes()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])

    def died(self) -> EngineDied:
        how = describe_exit(self.proc.returncode) if self.proc and self.proc.returncode is not None else "stopped"
        tail = self.log_tail()
        return EngineDied(f"the engine (llama-server, pid {self.proc.pid if self.proc else '?'}) {how}"
                          + (f". Its log ({self.log_path}) ends: {tail}" if tail else ""))

    async def wait_ready(self, session: aiohttp.ClientSession, timeout: float = 180.0) -> int:
        """Wait for the model to load, then evaluate a prompt and one token. Returns the tokens evaluated."""
        deadline = time.monotonic() + timeout
        while not await self._healthy(session):
            if self.proc.returncode is not None:
                raise self.died()
            if time.monotonic() > deadline:
                raise EngineDied(f"the engine did not load its model within {timeout:g}s (log: {self.log_path})")
            await asyncio.sleep(0.05)
        return await self.evaluate(session)

    async def _healthy(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(self.base_url + "/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def evaluate(self, session: aiohttp.ClientSession) -> int:
        body = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 1, "temperature": 0}
        try:
            async with session.post(self.base_url + "/v1/chat/completions", json=body, headers=self.headers,
                                    timeout=aiohttp.ClientTimeout(total=120)) as r:
                answer = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            await self.reap()
            if self.proc.returncode is not None:
                raise self.died() from None
            raise EngineDied(f"the engine failed to evaluate a token: {type(exc).__name__} {exc}") from None
        usage = answer.get("usage") if isinstance(answer, dict) else None
        if r.status != 200 or not isinstance(usage, dict) or not usage.get("prompt_tokens"):
            raise EngineDied(f"the engine answered a one-token request with {r.status}: {str(answer)[:200]}")
        return int(usage["prompt_tokens"]) + int(usage.get("completion_tokens") or 0)

    async def reap(self, wait: float = 2.0) -> None:
        """A broken connection may be the child dying: give its exit a moment to be seen."""
        try:
            await asyncio.wait_for(self.proc.wait(), wait)
        except TimeoutError:
            pass

    async def stop(self, grace: float = 5.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
