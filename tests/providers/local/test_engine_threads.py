"""The engine's threads are chosen from measurement: which pair the timings pick, when a measurement is made
again, that the operator's setting wins, and what happens when nothing can be measured."""
import asyncio
import os
import stat
import subprocess
from pathlib import Path

import pytest

from cbgate.config import load_settings
from cbgate.providers.local import threads
from cbgate.providers.local.command import EngineOptions
from cbgate.providers.local.threads import Calibration, candidates, choose, measure, parse_decode_rates, tuned
from cbgate.providers.registry import ProviderRegistry
from tests.support.catalog import write_catalog
from tests.support.fake_engine import FakeEngine, assemble

TABLE = """
|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |
|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|
|    32 |     32 |    1 |     64 |    0.056 |   286.58 |    0.350 |    {one} |    0.405 |   118.40 |
|    32 |     32 |    4 |    256 |    0.327 |   195.83 |    0.815 |   {four} |    1.142 |   168.11 |
"""


def test_two_threads_are_chosen_when_they_decode_faster_at_one_and_four_sequences():
    rates = {(1, 1): {1: [60, 62, 61], 4: [98, 97, 99]},
             (1, 2): {1: [61, 60, 62], 4: [150, 149, 152]},
             (2, 2): {1: [90, 91, 89], 4: [155, 150, 158]}}
    (pair, figures) = choose(rates)
    assert pair == (2, 2)
    assert "2/2: 89 150" in figures  # the slowest rounds the choice was made on are said


def test_a_busy_machine_where_two_threads_stall_picks_one():
    rates = {(1, 1): {1: [84, 80, 90], 4: [98, 95, 101]},
             (1, 2): {1: [63, 70, 60], 4: [37, 190, 30]},  # a quiet moment does not win: the slowest round counts
             (2, 2): {1: [52, 13, 25], 4: [76, 56, 78]}}
    assert choose(rates)[0] == (1, 1)


def test_batch_threads_alone_are_added_when_only_several_sequences_gain():
    rates = {(1, 1): {1: [90], 4: [100]}, (1, 2): {1: [89], 4: [150]}, (2, 2): {1: [60], 4: [152]}}
    assert choose(rates)[0] == (1, 2)


def test_threads_that_stall_when_the_load_comes_lose_to_fewer_that_slow_down_gently():
    # rounds taking turns while other work comes and goes: two threads are faster in the quiet rounds only
    rates = {(1, 1): {1: [97, 80, 95], 4: [120, 100, 118]},
             (1, 2): {1: [91, 75, 90], 4: [188, 20, 180]},
             (2, 2): {1: [143, 12, 140], 4: [203, 15, 200]}}
    assert choose(rates)[0] == (1, 1)
    quiet = {pair: {n: [max(values)] * 3 for n, values in by_level.items()} for pair, by_level in rates.items()}
    assert choose(quiet)[0] == (2, 2)


def test_more_threads_must_be_clearly_faster_to_be_chosen():
    close = {(1, 1): {1: [100], 4: [100]}, (2, 2): {1: [103], 4: [103]}}
    assert choose(close)[0] == (1, 1)  # within the 5% margin: the core stays the gateway's
    clear = {(1, 1): {1: [100], 4: [100]}, (2, 2): {1: [110], 4: [110]}}
    assert choose(clear)[0] == (2, 2)


def test_a_pair_not_measured_at_every_level_does_not_count_and_nothing_measured_is_no_choice():
    rates = {(1, 1): {1: [50], 4: [60]}, (2, 2): {1: [200]}}  # the budget ran out before its 4 sequences
    assert choose(rates)[0] == (1, 1)
    assert choose({}) is None
    assert choose({(2, 2): {1: [200], 4: []}}) is None


def test_the_candidates_cover_one_thread_to_all_cores_with_batch_threads_equal_or_all():
    assert candidates(1) == [(1, 1)]
    assert candidates(2) == [(1, 1), (1, 2), (2, 2)]
    many = candidates(16)
    assert (1, 16) in many and (15, 15) in many and (16, 16) in many and (8, 16) in many
    assert len(many) <= 12  # powers of two, not every count: the budget is 30 s


def test_the_bench_table_is_read_and_the_rounds_stop_at_the_budget():
    assert parse_decode_rates(TABLE.format(one="91.54", four="157.00")) == {1: 91.54, 4: 157.0}
    now = [0.0]
    calls = []

    def runner(argv, timeout):
        calls.append((argv[argv.index("-t") + 1], argv[argv.index("-tb") + 1], timeout))
        now[0] += 4.0  # each run takes 4 s
        return TABLE.format(one="80.0", four="120.0")

    rates = measure(Path("/bench"), Path("/model"), [(1, 1), (1, 2), (2, 2)], (1, 4), budget=10.0,
                    runner=runner, clock=lambda: now[0])
    assert [c[:2] for c in calls] == [("1", "1"), ("1", "2"), ("2", "2")]  # the third started at 8 s, none after
    assert calls[-1][2] == pytest.approx(2.0)  # a run gets only what is left of the budget
    assert rates[(1, 1)] == {1: [80.0], 4: [120.0]}


def test_a_run_past_the_budget_ends_the_measurement_with_what_was_measured():
    def runner(argv, timeout):
        if argv[argv.index("-t") + 1] == "2":
            raise subprocess.TimeoutExpired(argv, timeout)
        return TABLE.format(one="80.0", four="120.0")

    rates = measure(Path("/bench"), Path("/model"), [(1, 1), (2, 2), (1, 2)], (1, 4), runner=runner)
    assert set(rates) == {(1, 1)}


def server_with_bench(folder: Path) -> Path:
    """A llama-server and a llama-batched-bench side by side, as scripts/build-engine leaves them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("llama-server", "llama-batched-bench"):
        (folder / name).write_text("#!/bin/sh\nexit 1\n")
        (folder / name).chmod(stat.S_IRWXU)
    return folder / "llama-server"


def counting_runner(table: str):
    calls = []

    def runner(argv, timeout):
        calls.append(argv)
        return table

    return runner, calls


def test_the_measurement_is_kept_per_model_build_and_cpu_count(tmp_path, monkeypatch):
    server = server_with_bench(tmp_path / "build")
    model, other_model = tmp_path / "a.gguf", tmp_path / "b.gguf"
    model.write_bytes(b"GGUF model a")
    other_model.write_bytes(b"GGUF model b")
    env = {"CBGATE_ENGINE_CACHE": str(tmp_path / "cache")}
    first = Calibration(server, model, 8, env).cache_file()
    assert first.parent == tmp_path / "cache" / "calibration"
    assert Calibration(server, model, 8, env).cache_file() == first
    assert Calibration(server, other_model, 8, env).cache_file() != first
    model.write_bytes(b"GGUF model a, another version")  # the same path, another file
    assert Calibration(server, model, 8, env).cache_file() != first
    model.write_bytes(b"GGUF model a")
    assert Calibration(server, model, 8, env).cache_file() == first
    server.write_text("#!/bin/sh\n# rebuilt\nexit 1\n")  # a new build
    rebuilt = Calibration(server, model, 8, env).cache_file()
    assert rebuilt != first
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert Calibration(server, model, 8, env).cache_file() != rebuilt
    assert Calibration(server, model, 1, env).cache_file() != Calibration(server, model, 8, env).cache_file()


def test_a_start_measures_once_then_reads_the_cache_and_again_measures_again(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    server = server_with_bench(tmp_path / "build")
    env = {"CBGATE_ENGINE_CACHE": str(tmp_path / "cache")}
    calibration = Calibration(server, assemble(), 8, env)
    runner, calls = counting_runner(TABLE.format(one="80.0", four="120.0"))
    said = []
    first = calibration.run(said.append, runner=runner)
    assert len(calls) == 3 * threads.ROUNDS and "measuring the engine's threads" in said[0]
    assert (first.threads, first.threads_batch) == (1, 1)  # all equal: the fewest threads
    assert first.how.startswith("measured") and "load" in first.how
    assert calibration.run(said.append, runner=runner) == first and len(calls) == 3 * threads.ROUNDS
    assert calibration.cached() == first
    runner2, calls2 = counting_runner(TABLE.format(one="80.0", four="120.0"))
    calibration.run(said.append, again=True, runner=runner2)
    assert len(calls2) == 3 * threads.ROUNDS


def options(tmp_path: Path, deployment: dict, bench: bool = True) -> tuple[EngineOptions, dict]:
    server = server_with_bench(tmp_path / "build") if bench else tmp_path / "bare" / "llama-server"
    if not bench:
        server.parent.mkdir(parents=True)
        server.write_text("#!/bin/sh\nexit 1\n")
        server.chmod(stat.S_IRWXU)
    env = {"CBGATE_LLAMA_SERVER": str(server), "CBGATE_ENGINE_CACHE": str(tmp_path / "cache")}
    return EngineOptions.from_deployment(assemble(), deployment, env), env


def flags(opts: EngineOptions) -> dict[str, str]:
    argv = opts.argv(port=9)
    return {name: argv[i + 1] for i, name in enumerate(argv[:-1]) if name.startswith("--")}


def test_the_operators_threads_win_and_nothing_is_measured(tmp_path):
    opts, env = options(tmp_path, {"n_threads": 3, "n_threads_batch": 5})
    chosen = tuned(opts, env)  # the fake bench exits 1: a measurement would fall back, not keep 3 and 5
    assert (flags(chosen)["--threads"], flags(chosen)["--threads-batch"]) == ("3", "5")
    assert "set in the catalog" in chosen.threads_how
    assert not (tmp_path / "cache").exists()
    alone = tuned(options(tmp_path / "b", {"n_threads": 2})[0], env)
    assert (alone.threads, alone.threads_batch) == (2, 2)


def test_without_a_bench_binary_the_fixed_rule_is_used_and_said(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    opts, env = options(tmp_path, {}, bench=False)
    chosen = tuned(opts, env)
    assert (flags(chosen)["--threads"], flags(chosen)["--threads-batch"]) == ("3", "3")
    assert chosen.threads_how.startswith("fixed rule") and "no llama-batched-bench" in chosen.threads_how


def test_a_failing_bench_or_calibration_off_falls_back_to_the_rule(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    opts, env = options(tmp_path, {})
    failed = tuned(opts, env)  # the fake bench exits 1
    assert (failed.threads, failed.threads_batch) == (1, 1) and "the measurement failed" in failed.threads_how
    off = tuned(opts, {**env, threads.CALIBRATE_ENV: "off"})
    assert "CBGATE_ENGINE_CALIBRATE=off" in off.threads_how


def test_the_start_says_which_threads_the_engine_runs_and_why(tmp_path, capsys):
    engine = FakeEngine(tmp_path / "fake")  # a llama-server with no llama-batched-bench beside it
    write_catalog(tmp_path / "data", [])
    registry = ProviderRegistry(load_settings(str(tmp_path / "data"), {**os.environ, **engine.env}))
    registry.build()

    async def start_and_stop():
        await registry.start()
        await registry.close()

    asyncio.run(start_and_stop())
    rule = threads.fixed_rule(os.cpu_count() or 1)[0]
    said = capsys.readouterr().err
    assert f"threads: {rule} decoding one sequence, {rule} for a batch (fixed rule, all cores but one: no " \
           "llama-batched-bench beside" in said
