import pytest

from tests.support.real_engine import RealEngine


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """llama-server on the real model, without the gateway."""
    started = RealEngine(tmp_path_factory.mktemp("engine") / "engine.log")
    yield started
    started.stop()
