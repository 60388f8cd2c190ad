"""A database made by an earlier cbgate keeps its data and gains what later migrations add."""
from sqlalchemy import text

from cbgate.store import migrations
from cbgate.store.db import Store
from cbgate.store.groups import list_groups


def test_group_timeouts_arrive_on_a_database_made_before_them(tmp_path, monkeypatch):
    store = Store(str(tmp_path / "old.db"))
    earlier = [step for step in migrations.MIGRATIONS if step[0] != "0006_group_timeouts"]
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
    assert store.migrate() == ["0006_group_timeouts"]
    assert store.migrate() == []
    [row] = list_groups(store)
    assert row.name == "mine" and row.timeouts is None
