#!/usr/bin/env python3
"""The embedded engine's benchmark, in one run on the embedded default model (SmolLM2-135M-Instruct Q4_1;
`--model gemma` for Gemma 3 270M Q4_K_M):

- aggregate completion tokens/s through the gateway (`cbgate serve`, a catalog of that one model) with 1, 4
  and 8 concurrent streams, the engine's threads as the gateway chose them (measured once and cached);
- the engine alone: the same llama-server command line (the same threads), called directly, at the same
  concurrency;
- raw llama.cpp batched decode of 1, 4 and 8 sequences with all cores (`llama-batched-bench` from the same
  build, `-t`/`-tb` = the machine's cores): what the hardware gives, whatever the engine's own setting;
- TTFT p50/p99 at 4 concurrent streams, and TTFT of a conversation's 10th turn against its 1st.

Every answer is 64 tokens (`max_tokens` 64, `ignore_eos`). Prints a table with the issue's targets and
writes bench/results/engine-latest.md with the load average before and after. Run:
`.venv/bin/python bench/engine.py [--model gemma]` (about 3 minutes on 2 quiet cores).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))
from cbgate.config import DEFAULT_MODEL, DEFAULT_MODEL_SOURCE, GEMMA_MODEL, GEMMA_MODEL_SOURCE  # noqa: E402
from cbgate.providers.local.source import resolve_model_file  # noqa: E402
from cbgate.providers.local.threads import CALIBRATE_ENV  # noqa: E402
from tests.support.catalog import write_catalog  # noqa: E402
from tests.support.gateway import make_admin, start_serve  # noqa: E402
from tests.support.real_engine import RealEngine  # noqa: E402

MAX_TOKENS = 64
# --model: (catalog name, source, what the report calls it)
MODELS = {"smollm2": (DEFAULT_MODEL, DEFAULT_MODEL_SOURCE, "SmolLM2-135M-Instruct Q4_1"),
          "gemma": (GEMMA_MODEL, GEMMA_MODEL_SOURCE, "Gemma 3 270M Q4_K_M")}
LEVELS = (1, 4, 8)
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


@dataclass
class Level:
    streams: int
    tokens: int = 0
    seconds: float = 0.0
    ttfts: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


async def one_stream(session: aiohttp.ClientSession, url: str, headers: dict, body: dict) -> tuple[int, float, str]:
    """(completion tokens, seconds to the first token, text) of one streamed answer."""
    started = time.perf_counter()
    first, tokens, text = None, 0, []
    async with session.post(url, data=orjson.dumps(body), headers=headers) as r:
        assert r.status == 200, await r.text()
        async for raw in r.content:
            if not raw.startswith(b"data: {"):
                continue
            event = orjson.loads(raw[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            for choice in event.get("choices") or ():
                content = choice["delta"].get("content")
                if content:
                    text.append(content)
                    if first is None:
                        first = time.perf_counter() - started
    return tokens, first or 0.0, "".join(text)


def client() -> aiohttp.ClientSession:
    """A connection per request, as the gateway's engine client does (llama-server may close one after a stream)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                 timeout=aiohttp.ClientTimeout(total=300))


MODEL = DEFAULT_MODEL  # set from --model
# the command as run, its settings included, taken before the run changes the environment
SET = [f"{name}={os.environ[name]}" for name in (CALIBRATE_ENV, "CBGATE_ENGINE_CACHE") if os.environ.get(name)]
COMMAND = " ".join(SET + [".venv/bin/python", "bench/engine.py", *sys.argv[1:]])


def body(prompt: str, messages: list[dict] | None = None) -> dict:
    return {"model": MODEL, "messages": messages or [{"role": "user", "content": prompt}],
            "max_tokens": MAX_TOKENS, "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}


async def measure(url: str, headers: dict, streams: int, rounds: int) -> Level:
    level = Level(streams)
    async with client() as session:
        await one_stream(session, url, headers, body("Warm up."))

        async def worker(i: int):
            for r in range(rounds):
                tokens, ttft, _ = await one_stream(session, url, headers, body(f"{PROMPT} (variant {i}-{r})"))
                level.tokens += tokens
                level.ttfts.append(ttft)

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(streams)))
        level.seconds = time.perf_counter() - started
    return level


async def turns(url: str, headers: dict, count: int = 10) -> list[float]:
    """TTFT of each turn of one conversation that grows by a reply and a question per turn."""
    history = [{"role": "user", "content": "Here is some context about ships and the sea. " * 30 + PROMPT}]
    ttfts = []
    async with client() as session:
        for i in range(count):
            _, ttft, text = await one_stream(session, url, headers, body("", history))
            ttfts.append(ttft)
            history += [{"role": "assistant", "content": text}, {"role": "user", "content": f"Go on ({i})."}]
    return ttfts


def batched_decode(model: Path, threads: int, sequences: int) -> float:
    """Raw llama.cpp: decode tokens/s of `sequences` decoding together (llama-batched-bench, same build)."""
    binary = Path(sys.prefix) / "bin" / "llama-batched-bench"
    out = subprocess.run([str(binary), "-m", str(model), "-c", "8192", "-b", "256", "-ub", "256",
                          "-npp", "32", "-ntg", str(MAX_TOKENS), "-npl", str(sequences),
                          "-t", str(threads), "-tb", str(threads)], capture_output=True, text=True, timeout=600)
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[2] == str(sequences):
            return float(cells[7])  # S_TG t/s: decode tokens/s of the whole batch
    raise RuntimeError(f"llama-batched-bench printed no table:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def report(gateway: dict[int, Level], alone: dict[int, Level], raw: dict[int, float], first: float, tenth: float,
           model: str, threads: str, loads: tuple[str, str]) -> str:
    g = {n: gateway[n].rate for n in LEVELS}
    ttft1, ttft4 = statistics.median(gateway[1].ttfts), statistics.median(gateway[4].ttfts)
    lines = [f"# Embedded engine: {model}, {os.cpu_count()} cores, "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load {loads[0]} at the start, {loads[1]} at the end",
             "", f"Command: `{COMMAND}`. Engine (through the "
             f"gateway and alone): {threads}. Raw batched decode: {os.cpu_count()} threads for both.", "",
             "| streams | through the gateway | engine alone | raw batched decode, all cores | gateway / alone "
             "| gateway / raw |",
             "|---:|---:|---:|---:|---:|---:|"]
    for n in LEVELS:
        lines.append(f"| {n} | {g[n]:.1f} tok/s | {alone[n].rate:.1f} tok/s | {raw[n]:.1f} tok/s | "
                     f"{g[n] / alone[n].rate:.2f} | {g[n] / raw[n]:.2f} |")
    lines += ["", f"TTFT through the gateway: 1 stream p50 {ttft1 * 1000:.0f} ms; 4 streams p50 {ttft4 * 1000:.0f} ms, "
              f"p99 {pct(gateway[4].ttfts, 0.99) * 1000:.0f} ms; a conversation's 1st turn {first * 1000:.0f} ms, "
              f"10th turn {tenth * 1000:.0f} ms.", "", "| target | measured | met |", "|---|---:|:---:|"]
    targets = [("4 streams >= 2.0x one stream", g[4] / g[1], 2.0), ("4 streams >= 0.95x the engine alone at 4",
               g[4] / alone[4].rate, 0.95), ("4 streams >= 0.85x raw batched decode of 4", g[4] / raw[4], 0.85),
               ("8 streams >= 2.8x one stream", g[8] / g[1], 2.8)]
    lines += [f"| {name} | {value:.2f}x | {'yes' if value >= goal else 'NO'} |" for name, value, goal in targets]
    ratio = ttft4 / ttft1
    lines.append(f"| TTFT p50 at 4 streams < 2x one stream's | {ratio:.2f}x | {'yes' if ratio < 2 else 'NO'} |")
    lines.append(f"| 10th turn TTFT / 1st turn TTFT (prefix reuse) | {tenth / first:.2f}x | "
                 f"{'yes' if tenth < 1.5 * first else 'NO'} |")
    return "\n".join(lines) + "\n"


async def run(rounds: int, name: str, source: str) -> tuple[dict[int, Level], dict[int, Level], dict[int, float],
                                                            float, float, str]:
    """Both servers up at once, and at each concurrency the three measured back to back, so that the
    shared machine's load weighs on the three alike."""
    scratch = Path(tempfile.mkdtemp(prefix="cbgate-bench-engine-"))
    data_dir = scratch / "data"
    model = resolve_model_file(source, scratch / "models")
    write_catalog(data_dir, [{"name": name, "default": True,
                              "deployments": [{"kind": "local", "source": source, "name": f"bench-{name}"}]}],
                  include_embedded=False)
    admin = make_admin(data_dir, {"CBGATE_DATA_DIR": str(data_dir)})
    env_id = admin.create_env()
    _, key = admin.create_key(env_id)
    admin.set_env_limits(env_id, {"concurrency": None})  # 8 streams: over an environment's default of 5
    admin.store.close()
    served = start_serve(data_dir, {"CBGATE_LOG_LEVEL": "warning"}, timeout=300)  # it may measure threads first
    if os.environ.get(CALIBRATE_ENV, "").strip().lower() == "again":
        os.environ[CALIBRATE_ENV] = "auto"  # measured again by the gateway just now: the engine alone takes that
    engine = RealEngine(scratch / "engine.log", parallel=8, model=model, tune=True)  # the gateway's threads
    threads = f"--threads {engine.options.threads} --threads-batch {engine.options.threads_batch} " \
              f"({engine.options.threads_how})"
    gateway, alone, raw = {}, {}, {}
    try:
        url, headers = served.url + "/v1/ai/cloudbase/chat/completions", {"Authorization": f"Bearer {key}"}
        for n in LEVELS:
            answers = rounds if n > 1 else rounds + 2
            raw[n] = batched_decode(model, os.cpu_count() or 1, n)
            alone[n] = await measure(engine.url + "/v1/chat/completions", engine.headers, n, answers)
            gateway[n] = await measure(url, headers, n, answers)
            print(f"{n} streams: gateway {gateway[n].rate:.1f}, alone {alone[n].rate:.1f}, raw {raw[n]:.1f} tok/s",
                  file=sys.stderr, flush=True)
        ttfts = await turns(url, headers)
    finally:
        engine.stop()
        served.proc.terminate()
        served.proc.wait(30)
    return gateway, alone, raw, ttfts[0], ttfts[-1], threads


def main() -> None:
    global MODEL
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="smollm2", help="the embedded model to measure")
    parser.add_argument("--rounds", type=int, default=2, help="answers per stream at each concurrency")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "engine-latest.md"), help="file, or -")
    args = parser.parse_args()
    MODEL, source, title = MODELS[args.model]
    before = load_average()
    gateway, alone, raw, first, tenth, threads = asyncio.run(run(args.rounds, MODEL, source))
    text = report(gateway, alone, raw, first, tenth, title, threads, (before, load_average()))
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
