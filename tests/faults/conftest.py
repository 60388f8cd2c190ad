import pytest

from tests.faults.services import OwnPostgres, OwnRedis


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _own_postgres_cluster():
    cluster = OwnPostgres()
    yield cluster
    cluster.remove()


@pytest.fixture
def own_postgres(_own_postgres_cluster):
    """The cluster started, with an empty ledger database; stopped after the test."""
    cluster = _own_postgres_cluster
    cluster.start()
    cluster.fresh_database()
    yield cluster
    try:
        cluster.stop()
    except Exception:
        pass


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
