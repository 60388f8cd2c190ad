"""SIGHUP: read the config file again and apply what can change safely while serving.

Applied at once: the `cloudbase` catalog's upstream deployments (models added, removed or re-pointed) and
`log_content`. Everything else in `[server]` (database, Redis, limits' failure mode, body size, engine queue,
...) and embedded-engine deployments need a restart; the log names each of them that changed.
"""
from __future__ import annotations

import logging
from dataclasses import fields, replace

from cbgate.config import ConfigError, Settings, load_settings

log = logging.getLogger("cbgate.reload")

RELOADED = ("catalog", "log_content")
RESTART_FIELDS = tuple(f.name for f in fields(Settings) if f.name not in RELOADED + ("data_dir", "env_vars"))


def reload_settings(current: Settings, registry, metering) -> Settings:
    """The settings in force after the reload (the current ones, unchanged, when the file is broken); the
    caller puts them in the one holder every reader consults (`config.LiveSettings`)."""
    # TypeError too: a file value of the wrong kind (an array where a number goes) can reach a deployment's
    # builder; a broken file must never take the running gateway down.
    try:
        new = load_settings(str(current.data_dir), env=current.env_vars)
        restart_models = registry.reload_catalog(new)
    except (ConfigError, TypeError, ValueError) as exc:
        log.error("config not reloaded (the running configuration stays): %s", exc)
        return current
    metering.log_content = new.log_content
    applied = replace(new, catalog=registry.settings.catalog,
                      **{name: getattr(current, name) for name in RESTART_FIELDS})
    restart = [name for name in RESTART_FIELDS if getattr(new, name) != getattr(current, name)]
    restart += [f"the embedded deployment of {name}" for name in restart_models]
    log.info("config reloaded: %d catalog models (%s), log_content=%s%s", len(applied.catalog),
             ", ".join(m.name for m in applied.catalog), applied.log_content,
             f"; needs a restart to apply: {', '.join(restart)}" if restart else "")
    return applied
