"""The official `mcp` client pointed at cbgate, as a CloudBase user would point it: only the base URL and the
key differ from talking to the server itself."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client


def endpoint(gateway_url: str, service: str) -> str:
    return f"{gateway_url}/v1/cloudrun/{service}/messages"


@asynccontextmanager
async def streamable(url: str, key: str, mode: str = "legacy"):
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            yield client


@asynccontextmanager
async def sse(url: str, key: str):
    async with Client(sse_client(url, headers={"Authorization": f"Bearer {key}"}), mode="legacy") as client:
        yield client


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))
