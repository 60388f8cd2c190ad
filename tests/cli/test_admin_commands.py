"""`cbgate admin token ...` and `cbgate env set-origins`, and that the admin API sees what the CLI made."""
import requests

from tests.cli.test_tenant_commands import cbgate, last_line
from tests.support.postgres import store_env_for_tests


def test_operator_token_lifecycle_and_digest_only_storage(tmp_path):
    token = last_line(cbgate(tmp_path, "admin", "token", "create", "--name", "ops"))
    assert token.startswith("cbop_") and len(token) >= 5 + 43
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("cbgate.db*"))
    assert token.encode() not in stored and token[5:].encode() not in stored
    listing = cbgate(tmp_path, "admin", "token", "list").stdout
    assert token not in listing and token[:12] in listing and "ops" in listing
    token_id = listing.splitlines()[1].split("\t")[0]
    assert last_line(cbgate(tmp_path, "admin", "token", "revoke", token_id)) == f"revoked {token_id}"
    again = cbgate(tmp_path, "admin", "token", "revoke", token_id)
    assert last_line(again) == f"already revoked {token_id} (nothing changed)"


def test_set_origins(tmp_path):
    cbgate(tmp_path, "env", "create", "team-a")
    saved = last_line(cbgate(tmp_path, "env", "set-origins", "team-a", "https://b.example,https://A.example/"))
    assert saved == "https://a.example,https://b.example"
    bad = cbgate(tmp_path, "env", "set-origins", "team-a", "a.example", check=False)
    assert bad.returncode == 1 and "no path" in bad.stderr and "Traceback" not in bad.stderr
    cleared = cbgate(tmp_path, "env", "set-origins", "team-a", "")
    assert "no origins" in last_line(cleared)


def test_a_cli_made_operator_token_opens_the_admin_api(gateway, monkeypatch):
    for name, value in store_env_for_tests().items():  # the CLI must use the gateway's database
        monkeypatch.setenv(name, value)
    token = last_line(cbgate(gateway.data_dir, "admin", "token", "create"))
    gateway.wait_for_snapshot()
    cbgate(gateway.data_dir, "env", "set-origins", gateway.env_id, "https://shop.example.com")
    env = requests.get(f"{gateway.url}/admin/v1/envs/{gateway.env_id}", headers={"Authorization": f"Bearer {token}"},
                       timeout=10).json()
    assert env["origins"] == ["https://shop.example.com"]
