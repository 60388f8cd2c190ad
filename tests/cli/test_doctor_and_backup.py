"""`cbgate doctor` finds what is wrong and says how to fix it; `cbgate backup` / `restore` round-trip a
SQLite store taken while it is in use."""
from __future__ import annotations

import json
import socket
import sqlite3
import threading

from cbgate.cli.backup import copy_database
from cbgate.providers.local.threads import Calibration
from tests.cli.test_cli_contract import run
from tests.support.catalog import write_catalog
from tests.support.fake_engine import assemble
from tests.support.gateway import free_port


def doctor(capsys, data_dir, *extra):
    code, out, err = run(capsys, "doctor", "--quick", "--json", "--port", str(free_port()), *extra,
                         data_dir=data_dir)
    return code, {f["check"]: f for f in json.loads(out)}


def made(capsys, tmp_path):
    assert run(capsys, "env", "create", "team-a", data_dir=tmp_path)[0] == 0
    return tmp_path


def test_a_healthy_data_dir_passes(tmp_path, capsys):
    code, found = doctor(capsys, made(capsys, tmp_path))
    assert code == 0, found
    assert {name: f["status"] for name, f in found.items()} == {
        "data dir": "ok", "config": "ok", "database": "ok", "migrations": "ok", "model smollm2-135m-instruct": "ok",
        "model gemma-3-270m": "ok", "threads smollm2-135m-instruct": "ok", "threads gemma-3-270m": "ok", "port": "ok",
        "redis": "ok"}
    assert "applied" in found["migrations"]["detail"]


def test_the_engine_threads_are_shown_as_the_next_start_takes_them(tmp_path, capsys, monkeypatch):
    data = made(capsys, tmp_path)
    monkeypatch.setenv("CBGATE_ENGINE_CACHE", str(tmp_path / "engine-cache"))
    build = tmp_path / "build"
    build.mkdir()
    for name in ("llama-server", "llama-batched-bench"):
        (build / name).write_text("#!/bin/sh\nexit 1\n")
        (build / name).chmod(0o700)
    monkeypatch.setenv("CBGATE_LLAMA_SERVER", str(build / "llama-server"))

    def threads() -> str:
        return doctor(capsys, data)[1]["threads gemma-3-270m"]["detail"]

    write_catalog(data, [], engine={"n_threads": 2, "n_threads_batch": 3})
    assert threads().startswith("--threads 2 --threads-batch 3 (set in the catalog")
    write_catalog(data, [], engine={"parallel": 4})
    assert "not measured yet" in threads()
    cache = Calibration(build / "llama-server", assemble(), 4, {"CBGATE_ENGINE_CACHE": str(tmp_path / "engine-cache")})
    cache.cache_file().parent.mkdir(parents=True)
    cache.cache_file().write_text(json.dumps({"threads": 1, "threads_batch": 2, "how": "measured at noon"}))
    assert threads() == "--threads 1 --threads-batch 2 (measured at noon)"
    (build / "llama-batched-bench").unlink()
    assert "fixed rule, all cores but one: no llama-batched-bench" in threads()


def test_problems_are_named_with_their_fix(tmp_path, capsys, monkeypatch):
    data = made(capsys, tmp_path)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    write_catalog(data, [{"name": "up", "deployments": [{"kind": "openai", "base_url": dead}]}])
    assert run(capsys, "group", "create", "--env", "team-a", "lan", "--base-url", "http://10.1.2.3:8000/v1",
               "--models", "m", "--no-check", data_dir=data)[0] == 0
    with sqlite3.connect(data / "cbgate.db") as conn:  # as an older version left it
        conn.execute("DELETE FROM schema_migrations WHERE name = (SELECT max(name) FROM schema_migrations)")
    monkeypatch.setenv("CBGATE_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, found = doctor(capsys, data, "--port", str(busy.getsockname()[1]))
    assert code == 1
    assert found["migrations"]["status"] == "warn" and "cbgate serve" in found["migrations"]["fix"]
    assert found["port"]["status"] == "fail" and "--port" in found["port"]["fix"]
    assert found["upstream up (openai:" + dead + ")"]["status"] == "fail"
    lan = found["group team-a/lan"]
    assert lan["status"] == "fail" and "non-public" in lan["detail"] and "CBGATE_UPSTREAM_ALLOW" in lan["fix"]
    assert found["redis"]["status"] == "fail" and "CBGATE_REDIS_URL" in found["redis"]["fix"]


def test_plain_output_and_a_broken_config(tmp_path, capsys):
    data = made(capsys, tmp_path)
    (data / "cbgate.toml").write_text("[server]\nmax_body = 1\n")
    code, out, _ = run(capsys, "doctor", "--quick", data_dir=data)
    assert code == 1 and out.startswith("FAIL  config") and "unknown key `max_body`" in out and "fix:" in out
    code, out, _ = run(capsys, "doctor", "--quick", data_dir=tmp_path / "nope")
    assert code == 1 and "FAIL  data dir" in out


def keys(data_dir) -> list[str]:
    with sqlite3.connect(data_dir / "cbgate.db") as conn:
        return sorted(r[0] for r in conn.execute("SELECT id FROM api_keys"))


def test_backup_while_writing_then_restore(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    made(capsys, data)
    run(capsys, "key", "create", "--env", "team-a", data_dir=data)
    stop = threading.Event()

    def writer():  # a busy gateway: writes keep coming while the copy is taken
        conn = sqlite3.connect(data / "cbgate.db", timeout=30)
        i = 0
        while not stop.is_set():
            conn.execute("INSERT INTO api_keys (id, env_id, digest, prefix, kind, name, created_at) "
                         "VALUES (?, 'team-a', ?, 'cbsk_x', 'server', 'w', 0)", (f"key-w{i}", f"d{i}"))
            conn.commit()
            i += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        code, out, err = run(capsys, "backup", str(tmp_path / "copy.db"), data_dir=data)
    finally:
        stop.set()
        thread.join()
    assert code == 0 and out.strip() == str(tmp_path / "copy.db") and "secret.key" in err
    copied = keys_of(tmp_path / "copy.db")
    assert copied and set(copied) <= set(keys(data))  # a consistent point in the writes

    code, _, err = run(capsys, "backup", str(tmp_path / "copy.db"), data_dir=data)
    assert code == 1 and "--force" in err  # never overwrites by surprise
    code, _, err = run(capsys, "restore", str(tmp_path / "copy.db"), data_dir=data)
    assert code == 1 and "--force" in err and "Stop `cbgate serve`" in err
    assert run(capsys, "restore", str(tmp_path / "copy.db"), "--force", data_dir=data)[0] == 0
    assert keys(data) == sorted(copied)

    (tmp_path / "junk.db").write_text("not a database")
    code, _, err = run(capsys, "restore", str(tmp_path / "junk.db"), "--force", data_dir=data)
    assert code == 1 and "not a cbgate database" in err


def keys_of(path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return sorted(r[0] for r in conn.execute("SELECT id FROM api_keys"))


def test_postgresql_is_pointed_at_its_own_tools(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CBGATE_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    code, _, err = run(capsys, "backup", str(tmp_path / "x.db"), data_dir=tmp_path)
    assert code == 1 and "pg_dump" in err


def test_copy_database_is_the_online_backup(tmp_path):
    with sqlite3.connect(tmp_path / "a.db") as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
    copy_database(tmp_path / "a.db", tmp_path / "b.db")
    with sqlite3.connect(tmp_path / "b.db") as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
