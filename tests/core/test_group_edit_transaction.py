"""A group edit is one transaction: when its model list cannot be stored, its new URL is not kept either."""
import pytest

from cbgate.store import groups as stored
from cbgate.core.group_admin import GroupChange
from tests.support.gateway import make_admin


def test_a_group_edit_that_fails_halfway_changes_nothing(tmp_path, monkeypatch):
    admin = make_admin(tmp_path / "data", {"CBGATE_UPSTREAM_ALLOW": "127.0.0.1"})
    env = admin.create_env()
    admin.groups.create_group(env, "mine", "http://127.0.0.1:9/v1", ["m1"], api_key="sk-1", check=False)

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away halfway")
    monkeypatch.setattr(stored, "set_models", broken)
    with pytest.raises(RuntimeError):
        admin.groups.change_group(env, "mine", GroupChange(base_url="http://127.0.0.1:10/v1", models=["m2"]))
    view = next(g for g in admin.groups.list_groups(env) if g.name == "mine")
    assert view.base_url == "http://127.0.0.1:9/v1" and [m for m, _ in view.switches] == ["m1"]
