"""Helpers every `cbgate` subcommand shares."""
from __future__ import annotations

import argparse
from datetime import datetime, timezone

from cbgate.config import load_settings
from cbgate.core.admin import Admin
from cbgate.store.db import Store

DATA_HELP = "data directory (default: $CBGATE_DATA_DIR or ~/.cbgate)"


def data_dir_option() -> argparse.ArgumentParser:
    """A parent parser so that --data-dir may also follow the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", dest="sub_data_dir", metavar="DIR", help=DATA_HELP)
    return common


def _utc(ts: float, layout: str) -> str:
    """A stored time as text; one past year 9999 (rows from before expiry was bounded) reads as "never"."""
    try:
        return datetime.fromtimestamp(ts, timezone.utc).strftime(layout)
    except (OverflowError, ValueError, OSError):
        return "never"


def when(ts: float | None) -> str:
    return _utc(ts, "%Y-%m-%d %H:%M:%SZ") if ts else "-"


class DataDirMissing(Exception):
    """A command other than `serve` was pointed at a data directory that does not exist."""


def iso(ts: float | None) -> str | None:
    return _utc(ts, "%Y-%m-%dT%H:%M:%SZ") if ts else None


def existing_settings(args, create: bool = False):
    """Only `serve` (create=True) makes a missing data directory: anywhere else a typo in --data-dir
    would silently start an empty database beside the real one."""
    settings = load_settings(args.data_dir)
    if not create and not settings.data_dir.is_dir():
        raise DataDirMissing(f"the data directory {settings.data_dir} does not exist (check --data-dir or "
                             f"$CBGATE_DATA_DIR; `cbgate serve` creates it on first start)")
    return settings


def open_admin(args, create: bool = False) -> Admin:
    settings = existing_settings(args, create)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the owner's alone: keys, ledger, secrets
    store = Store(settings.database_url)
    store.migrate()
    return Admin(store, settings)


