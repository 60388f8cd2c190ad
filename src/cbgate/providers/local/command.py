"""How the embedded engine is started: which `llama-server` binary, and its command line for one model.

The binary is the one `scripts/setup` built for this machine (linked into the virtual environment's
bin/), or the one `CBGATE_LLAMA_SERVER` names.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbgate.providers.local.gguf_meta import GGUFError, read_strings
from cbgate.providers.local.threads import fixed_rule

BINARY_ENV = "CBGATE_LLAMA_SERVER"
# llama-server reads its API key from here (common/arg.cpp): a command line is anyone's to read with ps,
# a process's environment only its owner's.
API_KEY_ENV = "LLAMA_API_KEY"


class EngineSetupError(Exception):
    """The engine cannot be started as configured; the message says what to do."""


# What of the gateway's environment the engine gets: the system's basics and llama.cpp's own settings, never
# the gateway's secrets (database URL, secret key, upstream keys).
ENGINE_ENV_NAMES = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR", "LD_LIBRARY_PATH"})
ENGINE_ENV_PREFIXES = ("LC_", "LLAMA_", "GGML_", "OMP_", "CBGATE_ENGINE_")


def engine_environment(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k in ENGINE_ENV_NAMES or k.startswith(ENGINE_ENV_PREFIXES)}


def find_llama_server(env: dict[str, str]) -> Path:
    named = env.get(BINARY_ENV)
    candidate = Path(named).expanduser() if named else Path(sys.prefix) / "bin" / "llama-server"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    if named:
        raise EngineSetupError(f"{BINARY_ENV} names {candidate}, which is not an executable file")
    raise EngineSetupError(
        "the embedded engine (llama-server) is not built for this machine: run scripts/setup "
        f"(or scripts/build-engine), or point {BINARY_ENV} at a llama-server binary")


def chat_template_for(model: Path, configured: str | None) -> str | None:
    """The `--chat-template` llama-server needs: none when the GGUF carries its own template, the
    family's built-in one when it does not (our Gemma file has none)."""
    if configured:
        return configured
    try:
        meta = read_strings(model, {"general.architecture", "tokenizer.chat_template"})
    except (GGUFError, OSError) as exc:
        raise EngineSetupError(str(exc)) from None
    if meta.get("tokenizer.chat_template"):
        return None
    family = meta.get("general.architecture", "")
    if family.startswith("gemma"):
        return "gemma"
    raise EngineSetupError(
        f"{model.name} carries no chat template and its family ({family or 'unknown'}) has no known one: "
        "set `chat_template` on the deployment (a llama-server built-in name such as chatml or llama3)")


@dataclass(frozen=True)
class EngineOptions:
    """One model's engine: the catalog deployment's options, with our defaults."""
    model: Path
    binary: Path
    n_ctx: int = 4096  # per sequence
    parallel: int = 8  # sequences decoded together (llama-server slots)
    batch: int = 256  # prompt tokens per step: a long prompt is prefilled in chunks between decode steps
    cache_ram_mib: int = 512  # prompts kept for reuse beyond the slots' own (llama-server's default is 8 GiB)
    threads: int | None = None  # decoding one sequence; None until chosen (threads.py), then the rule
    threads_batch: int | None = None  # a batch of tokens: a prompt, or several sequences decoding together
    threads_how: str = ""  # why these threads (threads.ThreadChoice.how)
    chat_template: str | None = None
    extra_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # the gateway's environment, handed to the child

    @classmethod
    def from_deployment(cls, model: Path, options: dict[str, Any], env: dict[str, str]) -> EngineOptions:
        try:
            return cls(model=model, binary=find_llama_server(env),
                       n_ctx=int(options.get("n_ctx", 4096)), parallel=int(options.get("parallel", 8)),
                       batch=int(options.get("batch", 256)), cache_ram_mib=int(options.get("cache_ram_mib", 512)),
                       threads=int(options["n_threads"]) if options.get("n_threads") else None,
                       threads_batch=int(options["n_threads_batch"]) if options.get("n_threads_batch") else None,
                       chat_template=chat_template_for(model, options.get("chat_template")),
                       extra_args=tuple(str(a) for a in options.get("args", ())),
                       env=tuple(engine_environment(env).items()))
        except (TypeError, ValueError) as exc:
            raise EngineSetupError(f"engine options for {model.name}: {exc}") from None

    def environment(self, api_key: str) -> dict[str, str]:
        """The child's whole environment: the filtered gateway one, and the key only the gateway may use."""
        return {**dict(self.env), API_KEY_ENV: api_key}

    def argv(self, port: int) -> list[str]:
        threads = self.threads or fixed_rule(os.cpu_count() or 1)[0]
        threads_batch = self.threads_batch or threads
        args = [str(self.binary), "--model", str(self.model), "--host", "127.0.0.1", "--port", str(port),
                "--alias", self.model.stem,
                "--ctx-size", str(self.n_ctx * self.parallel), "--parallel", str(self.parallel),
                "--cont-batching", "--batch-size", str(self.batch), "--ubatch-size", str(self.batch),
                "--threads", str(threads), "--threads-batch", str(threads_batch),
                "--threads-http", str(self.parallel + 4),  # each open stream holds an HTTP thread
                "--no-webui", "--metrics", "--cache-prompt", "--cache-ram", str(self.cache_ram_mib)]
        if self.chat_template:  # a built-in template's name: the classic formatter, not Jinja, reads it
            args += ["--no-jinja", "--chat-template", self.chat_template]
        return args + list(self.extra_args)
