"""Streamable HTTP details through the gateway, as raw HTTP: the session id the client holds is the gateway's,
event ids pass through, a stream is resumed with Last-Event-ID on the server's GET stream, DELETE ends the
session."""
from __future__ import annotations

import orjson
import requests

from tests.mcp.clients import endpoint

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
ACCEPT = "application/json, text/event-stream"


def events(text: str) -> list[tuple[str | None, dict]]:
    found = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event_id = next((line[4:] for line in block.splitlines() if line.startswith("id: ")), None)
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data and data[0].strip():
            found.append((event_id, orjson.loads("\n".join(data))))
    return found


def test_a_stream_is_resumed_after_its_last_event_id(mcp_gateway, mcp_server):
    url = endpoint(mcp_gateway.url, "tools")
    headers = {"Authorization": f"Bearer {mcp_gateway.key}", "Accept": ACCEPT}
    opened = requests.post(url, json=INIT, headers=headers, timeout=30)
    session = opened.headers["mcp-session-id"]
    assert session.startswith("mcps_") and session not in str(mcp_server.events.events)  # the gateway's own id
    headers |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    requests.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers, timeout=30)
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "add", "arguments": {"a": 20, "b": 22}, "_meta": {"progressToken": "p1"}}}
    streamed = events(requests.post(url, json=call, headers=headers, timeout=30).text)
    (progress_id, progress), (_, result) = streamed
    assert progress["method"] == "notifications/progress" and progress_id is not None
    assert result["result"]["structuredContent"] == {"result": 42}

    resumed = requests.get(url, headers={**headers, "Accept": "text/event-stream", "Last-Event-ID": progress_id},
                           timeout=30, stream=True)
    assert resumed.status_code == 200 and resumed.headers["content-type"].startswith("text/event-stream")
    replayed = b""
    for chunk in resumed.iter_content(None):
        replayed += chunk
        if b"structuredContent" in replayed:
            break
    resumed.close()
    (_, again), = [e for e in events(replayed.decode()) if "result" in e[1]]
    assert again == result  # what the client missed after that event, through the gateway

    ended = requests.delete(url, headers=headers, timeout=30)
    assert ended.status_code == 200
    gone = requests.post(url, json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, headers=headers, timeout=30)
    assert gone.status_code == 404


def test_the_route_table_answers_for_the_mcp_paths(mcp_gateway):
    """404 and 405 are the one route table's: a method the MCP paths do not take is a 405 with Allow."""
    for path in ("messages", "mcp"):
        refused = requests.put(f"{mcp_gateway.url}/v1/cloudrun/tools/{path}", headers={"Authorization": "Bearer x"},
                               timeout=30)
        assert refused.status_code == 405 and refused.json()["code"] == "INVALID_PATH"
        assert set(refused.headers["allow"].replace(" ", "").split(",")) == {"DELETE", "GET", "POST"}
    assert requests.post(f"{mcp_gateway.url}/v1/cloudrun/tools/other", timeout=30).status_code == 404
