"""The store: one SQLAlchemy engine over SQLite (default) or PostgreSQL, and the queries cbgate needs.

Every change to env-level state bumps `meta.revision` in the same transaction, so each replica can
see that something changed with one cheap query and reload its snapshot.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, delete, event, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from cbgate.store import schema
from cbgate.store.migrations import migrate, migration_status


class StoreConflict(Exception):
    """A row with that identity already exists."""


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: str
    env_id: str
    digest: str
    prefix: str
    kind: str
    name: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None


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

    # Environments.
    def create_env(self, env_id: str, default_models: dict[str, list[str]]) -> None:
        try:
            with self.changing() as conn:
                conn.execute(insert(schema.envs).values(id=env_id, created_at=time.time()))
                rows = [{"env_id": env_id, "group_name": g, "model": m, "enabled": True}
                        for g, models in default_models.items() for m in models]
                if rows:
                    conn.execute(insert(schema.model_switches), rows)
        except IntegrityError as exc:
            raise StoreConflict(f"environment {env_id} already exists") from exc

    def list_envs(self) -> list[tuple[str, float]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(
                select(schema.envs.c.id, schema.envs.c.created_at).order_by(schema.envs.c.id))]

    def env_exists(self, env_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(schema.envs.c.id).where(schema.envs.c.id == env_id)).first() is not None

    # API keys.
    def insert_key(self, row: KeyRow) -> None:
        with self.changing() as conn:
            conn.execute(insert(schema.api_keys).values(**asdict(row)))

    def list_keys(self, env_id: str | None = None) -> list[KeyRow]:
        query = select(schema.api_keys).order_by(schema.api_keys.c.created_at)
        if env_id is not None:
            query = query.where(schema.api_keys.c.env_id == env_id)
        with self.engine.connect() as conn:
            return [KeyRow(**r._mapping) for r in conn.execute(query)]

    def revoke_key(self, key_id: str) -> bool:
        with self.changing() as conn:
            result = conn.execute(update(schema.api_keys)
                                  .where(schema.api_keys.c.id == key_id, schema.api_keys.c.revoked_at.is_(None))
                                  .values(revoked_at=time.time()))
            return result.rowcount > 0

    def touch_keys(self, last_used: dict[str, float]) -> None:
        """Record when keys were last used; batched, and not a change replicas need to see."""
        if not last_used:
            return
        with self.engine.begin() as conn:
            for key_id, when in last_used.items():
                conn.execute(update(schema.api_keys).where(schema.api_keys.c.id == key_id)
                             .values(last_used_at=when))

    # The model switch.
    def model_switches(self, env_id: str | None = None) -> list[tuple[str, str, str, bool]]:
        t = schema.model_switches
        query = select(t.c.env_id, t.c.group_name, t.c.model, t.c.enabled)
        if env_id is not None:
            query = query.where(t.c.env_id == env_id)
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(query)]

    def set_model_switch(self, env_id: str, group: str, model: str, enabled: bool) -> None:
        t = schema.model_switches
        with self.changing() as conn:
            conn.execute(delete(t).where(t.c.env_id == env_id, t.c.group_name == group, t.c.model == model))
            conn.execute(insert(t).values(env_id=env_id, group_name=group, model=model, enabled=enabled))
