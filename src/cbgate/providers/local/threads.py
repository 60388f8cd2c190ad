"""How many threads the embedded engine uses, chosen from measurement on this machine.

llama.cpp decodes one sequence with `--threads` and a batch of several tokens (several sequences decoding
together, or a prompt) with `--threads-batch`. Which pair is fastest depends on the machine, its load and the
model: on 2 quiet cores two threads beat one, on 2 shared cores one thread is steadier (its threads wait for
each other at every step, so a thread the machine takes away stalls them all). So the pair is measured: once
per machine kind (CPU model and count), model file (its SHA-256) and engine build, `llama-batched-bench` of
the same build times each candidate pair decoding 1 and 4 sequences, in rounds, within 30 s, and the pair
whose slowest round decodes best at both wins. The result is cached in `$CBGATE_ENGINE_CACHE/calibration/`.

An operator's `n_threads` / `n_threads_batch` always win. `CBGATE_ENGINE_CALIBRATE=again` measures again at
the next start; `off` uses the fixed rule (all cores but one, both equal), as does a build without
`llama-batched-bench` or a measurement that produced nothing in time; the reason is said either way.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

CALIBRATE_ENV = "CBGATE_ENGINE_CALIBRATE"  # auto (default) | again | off
BUDGET_S = 30.0  # the whole measurement, every run included
ROUNDS = 3  # each candidate measured this many times at most, the candidates taking turns
LEVELS = (1, 4)  # sequences decoding together; the second is capped at the engine's `parallel`
MARGIN = 0.05  # more threads must be this much faster to be chosen: fewer leave the gateway a core
PROMPT_TOKENS, DECODE_TOKENS = 16, 24  # short runs: on a busy machine a round must fit the budget
BENCH_NAME = "llama-batched-bench"

Pair = tuple[int, int]  # (threads, threads_batch)


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    threads_batch: int
    how: str  # why these, in words, for the start line and `cbgate doctor`

    def describe(self) -> str:
        return f"--threads {self.threads} --threads-batch {self.threads_batch} ({self.how})"


def cpu_count() -> int:
    return os.cpu_count() or 1


def fixed_rule(cpus: int) -> Pair:
    """The rule used when nothing was measured: one core left to the gateway, both settings equal."""
    threads = max(1, cpus - 1)
    return threads, threads


def candidates(cpus: int) -> list[Pair]:
    """Threads 1, 2, 4 ... up to all cores (and all but one), each with batch threads equal or all cores."""
    counts = {cpus, max(1, cpus - 1)}
    n = 1
    while n < cpus:
        counts.add(n)
        n *= 2
    pairs = []
    for t in sorted(counts):
        pairs += [(t, t)] + ([(t, cpus)] if t != cpus else [])
    return pairs


def choose(rates: dict[Pair, dict[int, list[float]]], margin: float = MARGIN) -> tuple[Pair, str] | None:
    """The pair with the best decode, from measured tokens/s ({pair: {sequences: [tokens/s per round]}}).

    A pair is as good as its slowest round: threads that stall when the machine takes a core away (several
    times slower) lose to fewer threads that slow down gently, on a machine whose load comes and goes; on a
    quiet one every round is alike. Each pair scores the geometric mean, over the levels, of that rate against
    the best at the level (1.0: best at every level). A pair with more threads must beat one with fewer by
    `margin`. Only pairs measured at every level count; None when there is none."""
    levels = sorted({n for by_level in rates.values() for n in by_level})
    slowest = {pair: {n: min(by_level[n]) for n in levels}
               for pair, by_level in rates.items() if all(by_level.get(n) for n in levels)}
    if not slowest:
        return None
    best = {n: max(m[n] for m in slowest.values()) or 1.0 for n in levels}
    score = {pair: statistics.geometric_mean([max(m[n], 1e-9) / best[n] for n in levels])
             for pair, m in slowest.items()}
    chosen = None
    for pair in sorted(slowest, key=lambda p: (p[0] + p[1], p)):  # fewest threads first
        if chosen is None or score[pair] > score[chosen] * (1 + margin):
            chosen = pair
    figures = ", ".join(f"{t}/{tb}: " + " ".join(f"{slowest[(t, tb)][n]:.0f}" for n in levels)
                        for t, tb in sorted(slowest))
    return chosen, (f"slowest round's tokens/s at {'/'.join(map(str, levels))} sequences, threads/batch threads "
                    f"{figures}")


def bench_binary(server: Path) -> Path | None:
    """llama-batched-bench of the same build as `server` (beside it, links followed), when there is one."""
    for folder in dict.fromkeys((server.parent, server.resolve().parent)):
        found = folder / BENCH_NAME
        if found.is_file() and os.access(found, os.X_OK):
            return found
    return None


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_key(cpus: int, cpu_name: str, model_sha256: str, build: str, levels: tuple[int, ...]) -> str:
    """What a measurement holds for: the machine kind, the model file, the engine build and the levels."""
    text = json.dumps([cpus, cpu_name, model_sha256, build, list(levels)])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def build_identity(server: Path) -> str:
    """The engine build: its binary's real path, size and modification time."""
    real = server.resolve()
    stat = real.stat()
    return f"{real}:{stat.st_size}:{stat.st_mtime_ns}"


def engine_cache_dir(env: dict[str, str]) -> Path:
    """Where scripts/build-engine keeps its builds (README, CBGATE_ENGINE_CACHE); calibrations live beside."""
    if env.get("CBGATE_ENGINE_CACHE"):
        return Path(env["CBGATE_ENGINE_CACHE"])
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "cbgate" / "engine"


def parse_decode_rates(output: str) -> dict[int, float]:
    """{sequences: S_TG tokens/s} from llama-batched-bench's table."""
    found = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[2].isdigit():
            try:
                found[int(cells[2])] = float(cells[7])
            except ValueError:
                continue
    return found


Runner = Callable[[list[str], float], str]  # (argv, timeout) -> stdout; raises on failure or timeout


def run_bench(argv: list[str], timeout: float) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{BENCH_NAME} exited with {done.returncode}: {done.stderr.strip()[-300:]}")
    return done.stdout


def measure(bench: Path, model: Path, pairs: list[Pair], levels: tuple[int, ...], budget: float = BUDGET_S,
            rounds: int = ROUNDS, runner: Runner = run_bench,
            clock: Callable[[], float] = time.monotonic) -> dict[Pair, dict[int, list[float]]]:
    """Decode tokens/s of each pair at each level, the pairs taking turns round by round (so a change in the
    machine's load weighs on all alike), stopping when `budget` seconds are spent."""
    deadline = clock() + budget
    context = (PROMPT_TOKENS + DECODE_TOKENS) * max(levels) + 64
    rates: dict[Pair, dict[int, list[float]]] = {}
    for _ in range(rounds):
        for t, tb in pairs:
            left = deadline - clock()
            if left <= 0.5:
                return rates
            argv = [str(bench), "-m", str(model), "-c", str(context), "-b", "256", "-ub", "256",
                    "-npp", str(PROMPT_TOKENS), "-ntg", str(DECODE_TOKENS), "-npl", ",".join(map(str, levels)),
                    "-t", str(t), "-tb", str(tb)]
            try:
                found = parse_decode_rates(runner(argv, left))
            except subprocess.TimeoutExpired:
                return rates
            for n in levels:
                if n in found:
                    rates.setdefault((t, tb), {}).setdefault(n, []).append(found[n])
    return rates


def levels_for(parallel: int) -> tuple[int, ...]:
    return tuple(sorted({1, min(LEVELS[-1], max(1, parallel))}))


@dataclass(frozen=True)
class Calibration:
    """One engine's thread measurement: where it is cached, and how to make it."""
    server: Path
    model: Path
    parallel: int
    env: dict[str, str]

    @property
    def levels(self) -> tuple[int, ...]:
        return levels_for(self.parallel)

    def cache_file(self) -> Path:
        key = cache_key(cpu_count(), cpu_model(), file_digest(self.model), build_identity(self.server), self.levels)
        return engine_cache_dir(self.env) / "calibration" / f"{key}.json"

    def cached(self) -> ThreadChoice | None:
        try:
            saved = json.loads(self.cache_file().read_text())
            return ThreadChoice(int(saved["threads"]), int(saved["threads_batch"]), str(saved["how"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def run(self, say: Callable[[str], None], again: bool = False, budget: float = BUDGET_S,
            runner: Runner = run_bench) -> ThreadChoice:
        """The cached choice, or a fresh measurement (one process at a time per key; others wait for it)."""
        cpus = cpu_count()
        bench = bench_binary(self.server)
        if bench is None:
            raise RuntimeError(f"no {BENCH_NAME} beside {self.server}")
        target = self.cache_file()
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a second worker waits, then reads what the first measured
            if not again and (found := self.cached()) is not None:
                return found
            say(f"measuring the engine's threads for {self.model.name} on {cpus} cores (once per machine, model "
                f"and build; at most {budget:.0f} s) ...")
            started = time.monotonic()
            pairs = candidates(cpus)
            rates = measure(bench, self.model, pairs, self.levels, budget, runner=runner)
            picked = choose(rates)
            if picked is None:
                return fallback(cpus, f"{BENCH_NAME} measured nothing within {budget:.0f} s")
            (t, tb), figures = picked
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            choice = ThreadChoice(t, tb, f"measured {time.strftime('%Y-%m-%d %H:%M')} in "
                                  f"{time.monotonic() - started:.0f} s, load {load}, {len(rates)} of "
                                  f"{len(pairs)} pairs within the budget: {figures}")
            partial = target.with_suffix(".partial")
            partial.write_text(json.dumps({"threads": t, "threads_batch": tb, "how": choice.how}))
            partial.replace(target)
            return choice


def fallback(cpus: int, why: str) -> ThreadChoice:
    t, tb = fixed_rule(cpus)
    return ThreadChoice(t, tb, f"fixed rule, all cores but one: {why}")


def explicit(threads: int | None, threads_batch: int | None) -> ThreadChoice | None:
    """The operator's setting: n_threads alone sets both, n_threads_batch alone leaves threads to the rule."""
    if threads is None and threads_batch is None:
        return None
    t = threads or fixed_rule(cpu_count())[0]
    return ThreadChoice(t, threads_batch or t, "set in the catalog (n_threads / n_threads_batch)")


def _mode(env: dict[str, str]) -> str:
    return env.get(CALIBRATE_ENV, "auto").strip().lower() or "auto"


def known(options, env: dict[str, str]) -> ThreadChoice | None:
    """The pair a start would take without measuring (the operator's, the rule, the cached measurement), or
    None when a start measures. `options`: an EngineOptions; `env`: the gateway's environment."""
    choice = explicit(options.threads, options.threads_batch)
    if choice is not None:
        return choice
    if _mode(env) == "off":
        return fallback(cpu_count(), f"{CALIBRATE_ENV}=off")
    if bench_binary(options.binary) is None:
        return fallback(cpu_count(), f"no {BENCH_NAME} beside {options.binary} to measure with")
    if _mode(env) == "again":
        return None
    return Calibration(options.binary, options.model, options.parallel, env).cached()


def tuned(options, env: dict[str, str], say: Callable[[str], None] = lambda message: None):
    """`options` (an EngineOptions) with its thread pair chosen: the operator's, the measured one, or the rule."""
    try:
        choice = known(options, env)
        if choice is None:
            choice = Calibration(options.binary, options.model, options.parallel, env).run(
                say, again=_mode(env) == "again")
    except (OSError, RuntimeError) as exc:
        choice = fallback(cpu_count(), f"the measurement failed: {exc}")
    return replace(options, threads=choice.threads, threads_batch=choice.threads_batch, threads_how=choice.how)


def main() -> int:
    """`python -m cbgate.providers.local.threads`: measure (or read) the threads of the default catalog's embedded
    models, as scripts/setup does after building the engine, so the first `cbgate serve` need not."""
    import sys

    from cbgate.config import default_catalog
    from cbgate.providers.local.command import EngineOptions, EngineSetupError
    from cbgate.providers.local.source import ModelSourceError, resolve_model_file

    env = dict(os.environ)
    for model in default_catalog():
        for deployment in model.deployments:
            try:
                path = resolve_model_file(deployment.options["source"], Path.cwd() / "models")
                options = tuned(EngineOptions.from_deployment(path, deployment.options, env), env,
                                say=lambda message: print(f"     {message}", file=sys.stderr, flush=True))
            except (ModelSourceError, EngineSetupError) as exc:  # setup goes on: `cbgate serve` says it again
                print(f"cbgate: {model.name}: threads not measured: {exc}", file=sys.stderr)
                continue
            print(f"     {model.name}: --threads {options.threads} --threads-batch {options.threads_batch} "
                  f"({options.threads_how})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
