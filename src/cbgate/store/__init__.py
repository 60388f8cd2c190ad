"""Persistent state: tables, migrations, and the only module that knows SQL."""
