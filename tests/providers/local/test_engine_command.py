"""How the engine is found and started: the binary, the chat template read from the GGUF header, the
command line, and the setup smoke test catching an engine that crashes."""
import os
import subprocess
import sys

import pytest

from cbgate.providers.local.command import EngineOptions, EngineSetupError, chat_template_for, find_llama_server
from cbgate.providers.local.gguf_meta import GGUFError, read_strings, write_minimal
from tests.support.fake_engine import FakeEngine, assemble, fake_binary


def test_the_chat_template_comes_from_the_model_or_its_family(tmp_path):
    own = write_minimal(tmp_path / "own.gguf", {"general.architecture": "llama",
                                                "tokenizer.chat_template": "{{ messages }}"})
    gemma = write_minimal(tmp_path / "gemma.gguf", {"general.architecture": "gemma3"})
    other = write_minimal(tmp_path / "other.gguf", {"general.architecture": "mystery"})
    assert chat_template_for(own, None) is None  # llama-server applies the model's own
    assert chat_template_for(gemma, None) == "gemma"
    assert chat_template_for(other, "chatml") == "chatml"
    with pytest.raises(EngineSetupError, match="set `chat_template`"):
        chat_template_for(other, None)
    (tmp_path / "bad.gguf").write_bytes(b"not a model")
    with pytest.raises(EngineSetupError, match="not a GGUF"):
        chat_template_for(tmp_path / "bad.gguf", None)


def test_a_damaged_header_is_reported_not_crashed_on(tmp_path):
    path = write_minimal(tmp_path / "cut.gguf", {"general.architecture": "gemma3"})
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(GGUFError, match="damaged"):
        read_strings(path, {"general.architecture", "tokenizer.chat_template"})


def test_the_binary_is_the_setup_build_or_the_one_named(tmp_path):
    with pytest.raises(EngineSetupError, match="not an executable"):
        find_llama_server({"CBGATE_LLAMA_SERVER": str(tmp_path / "missing")})
    assert find_llama_server({"CBGATE_LLAMA_SERVER": str(fake_binary())}) == fake_binary()


def test_the_command_line_batches_sequences_and_prefills_in_chunks():
    env = {"CBGATE_LLAMA_SERVER": str(fake_binary()), "PATH": "/usr/bin", "LLAMA_ARG_FLASH_ATTN": "on",
           "CBGATE_SECRET_KEY": "operator-secret", "VLLM_KEY": "sk-upstream"}
    options = EngineOptions.from_deployment(assemble(), {"parallel": 8, "n_ctx": 2048, "args": ["--seed", "1"]}, env)
    assert dict(options.env) == {"PATH": "/usr/bin", "LLAMA_ARG_FLASH_ATTN": "on"}  # no secret reaches the engine
    argv = options.argv(port=9)
    flag = {name: argv[i + 1] for i, name in enumerate(argv[:-1]) if name.startswith("--")}
    assert flag["--parallel"] == "8" and flag["--ctx-size"] == str(8 * 2048) and "--cont-batching" in argv
    assert flag["--batch-size"] == flag["--ubatch-size"] == "256"  # a long prompt goes in 256-token steps
    assert flag["--host"] == "127.0.0.1" and flag["--chat-template"] == "gemma"
    assert "--api-key" not in argv and options.environment("k") == {**dict(options.env), "LLAMA_API_KEY": "k"}
    assert int(flag["--threads-http"]) > 8 and argv[-2:] == ["--seed", "1"]


def smoke(binary, engine: FakeEngine):
    return subprocess.run([sys.executable, "-m", "cbgate.providers.local.smoke", "--binary", str(binary),
                           "--model", str(assemble())], env={**os.environ, **engine.env}, capture_output=True,
                          text=True, timeout=60)


def test_the_setup_smoke_test_catches_an_engine_that_crashes(tmp_path):
    engine = FakeEngine(tmp_path / "engine")
    engine.script(crash_on_eval=True)  # loads, then segfaults when it evaluates a token
    crashed = smoke(fake_binary(), engine)
    assert crashed.returncode == 1
    [line] = crashed.stderr.strip().splitlines()
    assert "FAILED" in line and "SIGSEGV" in line and "scripts/build-engine --force" in line
    engine.script(crash_on_eval=None)
    passed = smoke(fake_binary(), engine)
    assert passed.returncode == 0 and "smoke test passed" in passed.stderr


def test_the_smoke_test_reports_a_binary_that_cannot_start(tmp_path):
    broken = tmp_path / "llama-server"
    broken.write_text("#!/bin/sh\necho 'illegal instruction' >&2\nkill -ILL $$\n")
    broken.chmod(0o755)
    result = smoke(broken, FakeEngine(tmp_path / "engine"))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "SIGILL" in line and "instruction this CPU cannot run" in line
