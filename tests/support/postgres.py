"""The machine's real PostgreSQL for tests: fresh databases made with CREATE DATABASE and dropped after.

Unreachable PostgreSQL skips the tests that need it, except under CI=true, where it fails them: CI
must never pass by skipping the multi-replica store.
"""
from __future__ import annotations

import atexit
import os
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest

SERVER_URL = os.environ.get("CBGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _server() -> psycopg.Connection:
    return psycopg.connect(SERVER_URL, autocommit=True, connect_timeout=3)


def require_postgres() -> None:
    try:
        _server().close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {urlparse(SERVER_URL).hostname} is unreachable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def database_url(name: str) -> str:
    return urlunparse(urlparse(SERVER_URL)._replace(path="/" + name))


def create_database(prefix: str = "cbgate_test") -> str:
    require_postgres()
    name = f"{prefix}_{os.getpid()}_{os.urandom(4).hex()}"
    with _server() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def drop_database(url: str) -> None:
    name = urlparse(url).path.lstrip("/")
    with _server() as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def set_reachable(url: str, reachable: bool) -> None:
    """An outage for one database: refuse new connections and end the open ones (or undo that)."""
    name = urlparse(url).path.lstrip("/")
    with _server() as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if reachable else "false"}')
        if not reachable:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


_session_database: list[str] = []  # created on first use, dropped when the test process exits


def session_database() -> str:
    if not _session_database:
        _session_database.append(create_database())
        atexit.register(drop_database, _session_database[0])
    return _session_database[0]


def store_env_for_tests() -> dict[str, str]:
    """With CBGATE_TEST_STORE=postgresql every test gateway and admin runs on this session's database,
    so the whole suite can be run against PostgreSQL; otherwise each uses its SQLite file."""
    if os.environ.get("CBGATE_TEST_STORE", "").lower() in ("postgresql", "postgres"):
        return {"CBGATE_DATABASE_URL": session_database()}
    return {}
