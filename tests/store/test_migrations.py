"""A database made by an earlier cbgate keeps its data and gains what later migrations add."""
from sqlalchemy import inspect, text

from cbgate.store import envs as stored_envs
from cbgate.store import migrations, schema
from cbgate.store.db import Store
from cbgate.store.groups import list_groups


GROUP_COLUMN_STEPS = ("0006_group_timeouts", "0015_deployment_caps")  # the steps that add model_groups columns


def test_group_timeouts_arrive_on_a_database_made_before_them(tmp_path, monkeypatch):
    store = Store(str(tmp_path / "old.db"))
    earlier = [step for step in migrations.MIGRATIONS if step[0] not in GROUP_COLUMN_STEPS]
    monkeypatch.setattr(migrations, "MIGRATIONS", earlier)
    with store.engine.begin() as conn:
        migrations.migrate(conn)
        # As that version made it: model_groups without the column.
        conn.execute(text("DROP TABLE model_groups"))
        conn.execute(text("CREATE TABLE model_groups (env_id VARCHAR(64), name VARCHAR(64), kind VARCHAR(16), "
                          "base_url VARCHAR(1024), protocol VARCHAR(16), secret VARCHAR(4096), enabled BOOLEAN, "
                          "created_at FLOAT, updated_at FLOAT, PRIMARY KEY (env_id, name))"))
        conn.execute(text("INSERT INTO model_groups VALUES "
                          "('e1', 'mine', 'custom', 'http://x', 'openai', NULL, 1, 0, 0)"))
    monkeypatch.undo()
    assert store.migrate() == list(GROUP_COLUMN_STEPS)
    assert store.migrate() == []
    [row] = list_groups(store)
    assert row.name == "mine" and row.timeouts is None


def make_before_deployment_caps(path, monkeypatch) -> Store:
    """A database as the version before 0015 left it, with one custom group."""
    store = Store(str(path))
    monkeypatch.setattr(migrations, "MIGRATIONS", [s for s in migrations.MIGRATIONS if s[0] != "0015_deployment_caps"])
    with store.engine.begin() as conn:
        migrations.migrate(conn)
    assert "vision" not in columns_of(store)["model_groups"]  # each step's frozen DDL: no column of later steps
    monkeypatch.undo()
    return store


def test_groups_made_before_deployment_capabilities_declare_nothing(tmp_path, monkeypatch):
    """Their image and audio parts keep going up as sent (declared neither way): an upgrade refuses nothing."""
    store = make_before_deployment_caps(tmp_path / "old.db", monkeypatch)
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO model_groups (env_id, name, kind, base_url, protocol, enabled, created_at, "
                          "updated_at) VALUES ('e1', 'vllm', 'custom', 'http://x/v1', 'openai', 1, 0, 0)"))
    assert store.migrate() == ["0015_deployment_caps"]
    [row] = list_groups(store)
    assert row.name == "vllm" and row.vision is None and row.audio_input is None
    store.close()


def columns_of(store: Store) -> dict[str, set[str]]:
    found = inspect(store.engine)
    return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}


def test_the_migrations_build_the_schema_the_code_uses(tmp_path):
    store = Store(str(tmp_path / "new.db"))
    assert store.migrate() == [name for name, _ in migrations.MIGRATIONS]
    expected = {t.name: {c.name for c in t.columns} for t in schema.metadata.sorted_tables}
    assert columns_of(store) == expected
    store.close()


def test_a_database_recorded_under_the_former_migration_ids_opens_and_migrates(tmp_path, monkeypatch):
    """Before the steps were renumbered, a database recorded 0004_usage_ledger, 0007_admin_plane,
    0003_env_limits and 0002_model_groups; it must not run them again, only what came after."""
    store = Store(str(tmp_path / "renumbered.db"))
    former = {new: old for old, new in migrations.FORMER_IDS.items()}
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:5])
    store.migrate()
    monkeypatch.undo()
    with store.engine.begin() as conn:
        for new, old in former.items():
            conn.execute(text("UPDATE schema_migrations SET name = :old WHERE name = :new"), {"old": old, "new": new})
        conn.execute(text("INSERT INTO envs VALUES ('team-old', 0)"))
    assert store.migrate() == [name for name, _ in migrations.MIGRATIONS[5:]]  # 0006 on, whatever came since
    assert store.migration_status()["pending"] == []
    assert [env for env, _ in stored_envs.list_envs(store)] == ["team-old"]
    assert "timeouts" in columns_of(store)["model_groups"] and "surface" in columns_of(store)["usage_ledger"]
    store.close()
