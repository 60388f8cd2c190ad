import pytest

from tests.support.gateway import start_in_thread
from tests.support.mcp_server import start_mcp_server

LOOPBACK = {"CBGATE_UPSTREAM_ALLOW": "127.0.0.1"}


@pytest.fixture(scope="module")
def mcp_server():
    server = start_mcp_server()
    yield server
    server.stop()


@pytest.fixture
def mcp_gateway(tmp_path, mcp_server):
    """A gateway (loopback allowed by the egress policy) fronting the test MCP server as service `tools`."""
    gw = start_in_thread(tmp_path / "data", env=LOOPBACK)
    gw.admin.mcp.create(gw.env_id, "tools", mcp_server.url)
    gw.wait_for_snapshot()
    yield gw
    gw.stop()
