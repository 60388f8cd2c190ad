"""The store: one SQLAlchemy engine over SQLite (default) or PostgreSQL, its migrations, and the
transaction that changes env-level state. The queries live beside it, one module per concept (envs,
groups, access, limits, usage, responses), as functions that take the Store.

Every change to env-level state bumps `meta.revision` in the same transaction, so each replica can
see that something changed with one cheap query and reload its snapshot.
"""
from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, select, text, update
from sqlalchemy.engine import Connection, Engine

from cbgate.store import schema
from cbgate.store.migrations import migrate, migration_status


class StoreConflict(Exception):
    """A row with that identity already exists."""


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def sqlalchemy_url(url: str) -> str:
    """Accept the URLs operators write (`postgresql://`, a bare file path) and name the driver."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return "sqlite:///" + url
    return url


def make_private_sqlite_file(url: str) -> None:
    """The SQLite file (and so its -wal and -shm, which SQLite creates with the file's own mode) readable by
    its owner only: it holds key digests, encrypted group secrets and the usage ledger. Files an older
    version made 0644 are tightened. (The data directory itself is created 0700 by `cbgate serve`.)"""
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return
    path = Path(url[len("sqlite:///"):])
    if not path.parent.is_dir():
        return  # SQLite says so when it opens it
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for each in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        try:
            mode = each.stat().st_mode
            if mode & 0o077:
                each.chmod(mode & 0o700)
        except OSError:  # absent, or not ours to change: SQLite reports what matters when it opens it
            pass


def _same(value):
    return value


class Store:
    def __init__(self, url: str):
        self.url = sqlalchemy_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        make_private_sqlite_file(self.url)
        kwargs = {"connect_args": {"check_same_thread": False}} if self.is_sqlite else {
            "pool_size": 5, "max_overflow": 5, "pool_pre_ping": True,
            "connect_args": {"connect_timeout": 5}}  # an unreachable host fails fast: auth fails closed on time
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # sqlite3 stores a bool as the integer 1 or 0, and None as NULL, either way; without an adapter it
            # first looks for one: two AttributeErrors made and dropped per such value bound (a ledger row has three
            # bools and several NULLs: ~3 us of the drain thread's, which shares the GIL with the event loop)
            sqlite3.register_adapter(bool, int)
            sqlite3.register_adapter(type(None), _same)

    def migrate(self) -> list[str]:
        with self.engine.begin() as conn:
            if not self.is_sqlite:
                # Replicas starting together must not run the same migration twice.
                conn.execute(text("SELECT pg_advisory_xact_lock(7242001)"))
            return migrate(conn)

    def migration_status(self) -> dict[str, list[str]]:
        """{"applied": [...], "pending": [...]}: what `migrate()` has done here and what it still would."""
        with self.engine.connect() as conn:
            return migration_status(conn)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def changing(self) -> Iterator[Connection]:
        """A transaction that changes env-level state and tells every replica so."""
        with self.engine.begin() as conn:
            yield conn
            conn.execute(update(schema.meta).where(schema.meta.c.name == "revision")
                         .values(value=schema.meta.c.value + 1))

    def revision(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(schema.meta.c.value)
                                .where(schema.meta.c.name == "revision")).scalar_one()
