"""`cbgate backup FILE` and `cbgate restore FILE`: a consistent copy of a SQLite store, taken with SQLite's
online backup API, so a running gateway may keep serving (and writing) meanwhile.

PostgreSQL is backed up with its own tools (`pg_dump` / `pg_restore`, README: Backups).
"""
from __future__ import annotations

import sys
from pathlib import Path

from cbgate.cli.commands import add_command
from cbgate.cli.common import existing_settings
from cbgate.errors import InvalidParam
from cbgate.store.sqlite_file import check_is_cbgate_database, copy_database, has_environments, sqlite_path

def cmd_backup(args) -> None:
    settings = existing_settings(args)  # copied as it is: no migration runs first
    source = sqlite_path(settings.database_url)
    if not source.is_file():
        raise InvalidParam(f"there is no database at {source} to back up")
    target = Path(args.file).expanduser()
    if target.exists() and not args.force:
        raise InvalidParam(f"{target} exists; choose another file or add --force to overwrite it")
    if target.exists():
        target.unlink()
    copy_database(source, target)
    applied = check_is_cbgate_database(target)
    print(f"backed up {source} to {target} ({len(applied)} migrations); keep "
          f"{settings.data_dir / 'secret.key'} (or CBGATE_SECRET_KEY) with it: group secrets need it",
          file=sys.stderr)
    print(target)


def cmd_restore(args) -> None:
    source = Path(args.file).expanduser()
    if not source.is_file():
        raise InvalidParam(f"{source} does not exist")
    check_is_cbgate_database(source)
    target = sqlite_path(existing_settings(args).database_url)
    if has_environments(target) and not args.force:
        raise InvalidParam(f"{target} holds environments; restoring replaces all of it. Stop `cbgate serve`, "
                           "take a backup of it first, then add --force")
    copy_database(source, target)
    print(f"restored {target} from {source}; start `cbgate serve` (it applies any newer migrations)",
          file=sys.stderr)
    print(target)


def register(sub, common) -> None:
    backup = add_command(sub, "backup", "copy the SQLite database to FILE while the gateway runs (online backup)",
                         ["cbgate backup ~/cbgate-$(date +%F).db"], [common])
    backup.add_argument("file", help="where to write the copy, e.g. backup.db")
    backup.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    backup.set_defaults(func=cmd_backup)
    restore = add_command(sub, "restore", "replace the SQLite database with a backup (stop serve first)",
                          ["cbgate restore ~/cbgate-2026-11-28.db --force"], [common])
    restore.add_argument("file", help="a file made by `cbgate backup`, e.g. backup.db")
    restore.add_argument("--force", action="store_true", help="replace a database that holds environments")
    restore.set_defaults(func=cmd_restore)
