"""The config file is validated: an unknown key anywhere is an error naming it (with the likely intended key),
never silently ignored."""
from __future__ import annotations

import pytest

from cbgate.config import ConfigError, load_settings

UPSTREAM = '[[models]]\nname = "m"\n[[models.deployments]]\nkind = "openai"\nbase_url = "http://10.0.0.5/v1"\n'


@pytest.mark.parametrize("text,named", [
    ("modles = []\n", "unknown key `modles` (did you mean `models`?)"),
    ("[server]\nredis_ulr = 'redis://x'\n", "[server]: unknown key `redis_ulr` (did you mean `redis_url`?)"),
    ('[[models]]\nname = "m"\ndefualt = true\n', "models[0] (m): unknown key `defualt`"),
    (UPSTREAM + 'api_key = "sk-x"\n', "deployments[0] (openai): unknown key `api_key` (did you mean `api_key_env`?)"),
    ('[[models]]\nname = "m"\n[[models.deployments]]\nkind = "local"\nsource = "x.gguf"\nctx = 4096\n',
     "deployments[0] (local): unknown key `ctx`"),
])
def test_unknown_keys_are_errors_that_name_the_key(tmp_path, text, named):
    (tmp_path / "cbgate.toml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(tmp_path), env={})
    assert named in str(caught.value) and "cbgate.toml" in str(caught.value)


def test_every_documented_key_is_accepted(tmp_path):
    (tmp_path / "cbgate.toml").write_text(
        "[server]\ndatabase_url = 'db.sqlite'\nredis_url = 'redis://127.0.0.1:6379/0'\nredis_prefix = 'p'\n"
        "ratelimit_failure = 'fail-closed'\nmax_body_bytes = 1000\nengine_queue = 4\nsnapshot_max_age = 10\n"
        "log_content = true\nresponses_ttl_days = 7\n"
        + UPSTREAM + 'name = "d"\napi_key_env = "K"\nmodel = "up"\ncontext_window = 8192\n'
        "timeouts = {connect = 1, first_byte = 2, idle = 3, total = 4}\nvision = true\naudio_input = false\n"
        '[[models]]\nname = "local"\ndefault = true\n[[models.deployments]]\nkind = "local"\nsource = "x.gguf"\n'
        "n_ctx = 2048\nn_threads = 2\ntemperature = 0.5\ntop_p = 0.9\nmax_tokens = 64\nvision = true\n"
        "audio_input = true\n")
    settings = load_settings(str(tmp_path), env={})
    assert [m.name for m in settings.catalog] == ["m", "local"] and settings.engine_queue == 4
    assert settings.catalog[1].deployments[0].options["vision"] is True
    assert settings.catalog[0].deployments[0].options["audio_input"] is False


@pytest.mark.parametrize("kind", ["local", "openai", "anthropic"])
@pytest.mark.parametrize("key", ["vision", "audio_input"])
def test_what_a_deployment_reads_is_a_yes_or_no(tmp_path, kind, key):
    where = 'source = "x.gguf"' if kind == "local" else 'base_url = "http://10.0.0.5/v1"'
    (tmp_path / "cbgate.toml").write_text(
        f'[[models]]\nname = "m"\n[[models.deployments]]\nkind = "{kind}"\n{where}\n{key} = "yes"\n')
    with pytest.raises(ConfigError, match=f"`{key}` must be true or false"):
        load_settings(str(tmp_path), env={})


def test_every_server_key_the_loader_reads_is_a_known_key():
    """A new `[server]` setting must be added to SERVER_KEYS, or the file could not set it."""
    import inspect
    import re

    import cbgate.config as config

    read = set(re.findall(r'server\.get\("([a-z_]+)"', inspect.getsource(config.load_settings)))
    assert read and read <= config.SERVER_KEYS, read - config.SERVER_KEYS


@pytest.mark.parametrize("line,named", [
    ('shutdown_timeout = "soon"', "[server] shutdown_timeout must be a number of seconds, got 'soon'"),
    ("shutdown_timeout = [1]", "[server] shutdown_timeout must be a number of seconds, got [1]"),
    ('max_body_bytes = "big"', "[server] max_body_bytes must be an integer, got 'big'"),
    ("snapshot_max_age = {a = 1}", "[server] snapshot_max_age must be an integer, got {'a': 1}"),
    ('responses_ttl_days = "week"', "[server] responses_ttl_days must be a number of days, got 'week'"),
])
def test_a_bad_server_value_in_the_file_is_an_error_naming_its_key(tmp_path, line, named):
    """The value is not in the environment: the message once looked it up there (a KeyError), and an array
    or a table was a TypeError; both are the operator's mistake, so a ConfigError saying which key."""
    (tmp_path / "cbgate.toml").write_text(f"[server]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(str(tmp_path), env={})
    assert str(caught.value) == named


def test_a_bad_variable_is_an_error_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings(str(tmp_path), env={"CBGATE_SHUTDOWN_TIMEOUT": "soon"})
    assert str(caught.value) == "CBGATE_SHUTDOWN_TIMEOUT must be a number of seconds, got 'soon'"
