import pytest

from tests.support.fake_llama import FakeLlama
from tests.support.gateway import start_in_thread


@pytest.fixture(autouse=True)
def _reset_fake_llama():
    FakeLlama.token_delay, FakeLlama.reply_tokens, FakeLlama.generated = 0.0, None, 0
    yield


@pytest.fixture
def gateway(tmp_path):
    """A running gateway over the scripted fake engine, with one env and one server key."""
    gw = start_in_thread(tmp_path / "data")
    yield gw
    gw.stop()
