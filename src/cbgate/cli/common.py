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


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if ts else "-"


def open_admin(args) -> Admin:
    settings = load_settings(args.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_url)
    store.migrate()
    return Admin(store, settings)


