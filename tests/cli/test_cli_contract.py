"""What makes the CLI scriptable and trustworthy: help everywhere, --json everywhere, refusals that say why,
secrets that never have to be typed on the command line. Run in-process (fast); the subprocess tests
beside it cover the real entry point."""
from __future__ import annotations

import argparse
import io
import json

import pytest

from cbgate.cli import build_parser, main

LIST_AND_SHOW = [("env", "list"), ("key", "list", "--env", "team-a"), ("model", "list", "--env", "team-a"),
                 ("group", "list", "--env", "team-a"), ("limits", "show", "--env", "team-a"),
                 ("admin", "token", "list"), ("usage", "--env", "team-a"), ("price", "list", "--env", "team-a"),
                 ("budget", "list", "--env", "team-a")]


def run(capsys, *argv, data_dir=None):
    """Run `cbgate argv...`; returns (exit code, stdout, stderr)."""
    args = list(argv) + (["--data-dir", str(data_dir)] if data_dir is not None else [])
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def data(tmp_path, capsys):
    assert run(capsys, "env", "create", "team-a", data_dir=tmp_path)[0] == 0
    return tmp_path


def leaf_parsers(parser: argparse.ArgumentParser, path=("cbgate",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from leaf_parsers(sub, path + (name,))
            return
    yield path, parser


def test_bare_cbgate_prints_help_and_version_works(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and "usage: cbgate" in out and "serve" in out and "admin token create" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("cbgate ")


def test_every_command_and_flag_has_help_and_an_example():
    leaves = list(leaf_parsers(build_parser()))
    assert len(leaves) >= 24
    for path, parser in leaves:
        assert parser.epilog and "examples:" in parser.epilog and "cbgate " in parser.epilog, path
        for action in parser._actions:
            if action.dest not in ("help",):
                assert action.help, f"{' '.join(path)} {action.option_strings or action.dest} has no help"


def test_commands_refuse_a_data_dir_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "typo"
    for argv in LIST_AND_SHOW + [("env", "create"), ("key", "create", "--env", "x")]:
        code, out, err = run(capsys, *argv, data_dir=missing)
        assert code == 1 and "does not exist" in err and str(missing) in err, argv
    assert not missing.exists()  # and nothing was created there


def test_every_list_and_show_command_speaks_json(data, capsys):
    for argv in LIST_AND_SHOW:
        code, out, err = run(capsys, *argv, "--json", data_dir=data)
        assert code == 0, (argv, err)
        json.loads(out)
        code, out, _ = run(capsys, *argv, data_dir=data)
        assert code == 0 and out.splitlines()[0].split("\t")[0] in ("id", "group", "name", "limit", "scope")


def test_usage_is_labelled(data, capsys):
    _, out, _ = run(capsys, "usage", "--env", "team-a", data_dir=data)
    head, total = out.strip().splitlines()
    assert head.split("\t") == ["scope", "requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens",
                                "cost"]
    assert total.split("\t")[0] == "total" and total.split("\t")[-1] == "-"  # no requests, no cost


def test_zero_limits_are_refused_and_off_means_none(data, capsys):
    code, _, err = run(capsys, "limits", "set", "--env", "team-a", "--concurrency", "0", data_dir=data)
    assert code == 2 and "off for no limit" in err
    code, out, _ = run(capsys, "limits", "set", "--env", "team-a", "--rpm", "off", "--tpm", "100", "--json",
                       data_dir=data)
    assert code == 0 and json.loads(out) == {"concurrency": 5, "rpm": None, "tpm": 100, "token_quota": None}


def test_group_list_shows_cloudbase_and_marks_groups_without_a_key(data, capsys):
    _, out, _ = run(capsys, "group", "list", "--env", "team-a", "--json", data_dir=data)
    groups = {g["name"]: g for g in json.loads(out)}
    assert list(groups)[0] == "cloudbase" and groups["cloudbase"]["models"] == [
        {"name": "smollm2-135m-instruct", "enabled": True}, {"name": "gemma-3-270m", "enabled": False}]
    deepseek = groups["deepseek"]
    assert deepseek["status"] == "needs key" and deepseek["key"] == "missing"
    assert not any(m["enabled"] for m in deepseek["models"])
    _, out, _ = run(capsys, "model", "list", "--env", "team-a", "--group", "deepseek", data_dir=data)
    assert "enabled" not in out and "needs key" in out


def test_a_secret_comes_from_stdin_a_file_or_the_prompt(data, capsys, monkeypatch, tmp_path):
    def key_state():
        _, out, _ = run(capsys, "group", "list", "--env", "team-a", "--json", data_dir=data)
        return {g["name"]: g["key"] for g in json.loads(out)}

    monkeypatch.setattr("sys.stdin", io.StringIO("sk-from-stdin\n"))
    code, out, err = run(capsys, "group", "set-key", "--env", "team-a", "deepseek", data_dir=data)
    assert code == 0 and "sk-from-stdin" not in out + err and key_state()["deepseek"] == "set"

    secret_file = tmp_path / "hunyuan.key"
    secret_file.write_text("sk-from-file\n")
    code, _, err = run(capsys, "group", "set-key", "--env", "team-a", "hunyuan", "--key-file", str(secret_file),
                       data_dir=data)
    assert code == 0 and "warning" not in err and key_state()["hunyuan"] == "set"

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    asked = []
    monkeypatch.setattr("sys.stdin", Terminal(""))
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or "sk-typed")
    assert run(capsys, "group", "set-key", "--env", "team-a", "deepseek", data_dir=data)[0] == 0
    assert asked and "deepseek" in asked[0]

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run(capsys, "group", "set-key", "--env", "team-a", "deepseek", data_dir=data)
    assert code == 1 and "no secret given" in err

    code, _, err = run(capsys, "group", "set-key", "--env", "team-a", "deepseek", "sk-on-the-line", data_dir=data)
    assert code == 0 and "shell history" in err  # still accepted, with a warning


def test_shell_completion_is_generated(capsys):
    code, out, _ = run(capsys, "completion", "bash")
    assert code == 0 and "complete" in out and "set-origins" in out
    code, out, _ = run(capsys, "completion", "zsh")
    assert code == 0 and "#compdef cbgate" in out
