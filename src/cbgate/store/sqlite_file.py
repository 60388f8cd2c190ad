"""A SQLite store as a file: its path, an online copy of it, and what a copy holds. The backup and
restore commands (cli/backup.py) work through these; SQL stays in store/."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from cbgate.errors import InvalidParam
from cbgate.store.db import sqlalchemy_url
from cbgate.store.migrations import KNOWN_IDS

PAGES_PER_STEP = 1024  # copy in steps, so a busy gateway's writers wait at most one step


def sqlite_path(database_url: str) -> Path:
    url = sqlalchemy_url(database_url)
    if not url.startswith("sqlite"):
        raise InvalidParam("backup and restore work on SQLite; for PostgreSQL use pg_dump and pg_restore "
                           "(README: Backups)")
    return Path(url.split("///", 1)[1])


def copy_database(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=10)
    dst = sqlite3.connect(target, timeout=10)
    try:
        src.backup(dst, pages=PAGES_PER_STEP)
    finally:
        dst.close()
        src.close()


def check_is_cbgate_database(path: Path) -> list[str]:
    """The migrations a backup file carries; refuses a file that is not a sound cbgate database."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise InvalidParam(f"{path} is not a cbgate database: {exc}") from None
    if ok != "ok":
        raise InvalidParam(f"{path} is damaged: {ok}")
    unknown = sorted(set(names) - KNOWN_IDS)
    if unknown:
        raise InvalidParam(f"{path} comes from a newer cbgate (migrations {', '.join(unknown)}); "
                           "restore it with that version")
    return names


def has_environments(path: Path) -> bool:
    if not path.is_file():
        return False
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM envs").fetchone()[0] > 0
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()
