"""Fixtures shared by the limiter tests."""
import pytest

from tests.support.redis_server import delete_prefix, require_redis, unique_prefix


@pytest.fixture
def prefix():
    """A Redis key prefix of the test's own (as a group of replicas sharing limits has), removed after it."""
    require_redis()
    name = unique_prefix()
    yield name
    delete_prefix(name)
