import pytest

from tests.support.gateway import start_in_thread


@pytest.fixture
def gateway(tmp_path):
    """A running gateway over the scripted fake engine (`gateway.engine`), with one env and one server key."""
    gw = start_in_thread(tmp_path / "data")
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for this test session (CREATE DATABASE), dropped at the end."""
    from tests.support.postgres import session_database
    return session_database()


@pytest.fixture
def fresh_postgres_url():
    """A database of its own, for a test that breaks or empties it."""
    from tests.support.postgres import create_database, drop_database
    url = create_database()
    yield url
    drop_database(url)
