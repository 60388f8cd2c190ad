"""An engine child never outlives the registry that started it, whatever the catalog became meanwhile."""
import asyncio
import os
import signal
from dataclasses import replace

from cbgate.config import load_settings
from cbgate.providers.registry import ProviderRegistry
from tests.support.catalog import write_catalog
from tests.support.fake_engine import FakeEngine


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_engine_of_a_model_a_reload_removed_is_stopped_at_close(tmp_path):
    engine = FakeEngine(tmp_path / "fake")
    write_catalog(tmp_path / "data", [])
    settings = load_settings(str(tmp_path / "data"), {**os.environ, **engine.env})

    async def serve_then_remove_the_model() -> int:
        registry = ProviderRegistry(settings)
        registry.build()
        await registry.start()
        pid = await asyncio.to_thread(engine.pid)
        registry.reload_catalog(replace(settings, catalog=()))  # the operator took the model out (SIGHUP)
        await registry.close()
        return pid

    pid = asyncio.run(serve_then_remove_the_model())
    left_running = running(pid)
    if left_running:
        os.kill(pid, signal.SIGKILL)  # not left behind for the next tests
    assert not left_running, "the removed model's engine still runs after the registry closed"
