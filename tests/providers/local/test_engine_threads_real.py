"""On the real engine build and the default model (SmolLM2): the gateway measures its engine's threads within
the bound, and the llama-server it starts runs the pair it chose."""
import asyncio
import os
import time
from pathlib import Path

import pytest

from cbgate.config import DEFAULT_MODEL_SOURCE, load_settings
from cbgate.providers.registry import ProviderRegistry
from cbgate.providers.local.threads import BUDGET_S, candidates
from tests.support.catalog import write_catalog


@pytest.mark.timing
def test_the_engine_starts_with_the_threads_measured_within_the_bound(tmp_path):
    data = tmp_path / "data"
    write_catalog(data, [{"name": "smollm2-135m-instruct", "deployments": [
        {"kind": "local", "source": DEFAULT_MODEL_SOURCE, "name": "embedded-smollm2", "parallel": 4}]}],
        include_embedded=False)
    settings = load_settings(str(data), {**os.environ, "CBGATE_ENGINE_CACHE": str(tmp_path / "cache")})
    registry = ProviderRegistry(settings)

    started = time.monotonic()
    registry.build()  # finds the model, measures the threads (nothing cached in this cache dir)
    took = time.monotonic() - started
    (engine,) = registry._engines.values()
    options = engine.supervisor.make_child().options
    assert options.threads_how.startswith("measured"), options.threads_how
    assert took < BUDGET_S + 15, f"the measurement took {took:.0f} s"  # a killed last run and the model's hash
    assert (options.threads, options.threads_batch) in candidates(os.cpu_count() or 1)
    assert list((tmp_path / "cache" / "calibration").glob("*.json")), "the measurement was not kept"

    async def command_line() -> list[str]:
        await registry.start()
        try:
            pid = engine.supervisor.child.proc.pid
            return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        finally:
            await registry.close()

    argv = asyncio.run(command_line())
    assert argv[argv.index("--threads") + 1] == str(options.threads)
    assert argv[argv.index("--threads-batch") + 1] == str(options.threads_batch)

    again = ProviderRegistry(settings)
    started = time.monotonic()
    again.build()  # the second start reads the measurement
    assert time.monotonic() - started < 5
    (cached,) = again._engines.values()
    assert cached.supervisor.make_child().options.threads_how == options.threads_how
