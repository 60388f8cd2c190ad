"""Everything a benchmark run puts on disk: the fake upstream's bodies and nginx.conf, the gateway's
catalog, LiteLLM's config and the request bodies. Pure functions of ports and paths (stdlib only), so a
test can check that the catalog they make is one the gateway accepts."""
from __future__ import annotations

import json
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent

MODEL_JSON = "bench-json"  # its deployment answers a fixed non-streaming completion
MODEL_SSE = "bench-sse"  # its deployment answers a fixed stream of STREAM_EVENTS events
UPSTREAM_MODEL = "fake-upstream"  # the name the upstream knows the model by
UPSTREAM_KEY_ENV = "BENCH_UPSTREAM_KEY"  # holds the secret the gateway and LiteLLM send upstream
STREAM_EVENTS = 14  # `data: {...}` events in the streamed reply, the usage chunk included
UPSTREAM_PATHS = {MODEL_JSON: "/json/v1", MODEL_SSE: "/sse/v1"}  # base URLs; + /chat/completions

WORDS = ["Hello", " there", "!", " Here", " is", " a", " short", " answer", " to", " your", " question", "."]


def _chunk(delta: dict, finish_reason: str | None = None, usage: dict | None = None) -> dict:
    chunk = {"id": "chatcmpl-bench0001", "object": "chat.completion.chunk", "created": 1767225600,
             "model": UPSTREAM_MODEL, "system_fingerprint": "fp_bench",
             "choices": [] if usage else [{"index": 0, "delta": delta, "logprobs": None,
                                           "finish_reason": finish_reason}]}
    if usage:
        chunk["usage"] = usage
    return chunk


USAGE = {"prompt_tokens": 23, "completion_tokens": len(WORDS), "total_tokens": 23 + len(WORDS)}


def completion_body() -> bytes:
    """What the fake upstream answers to a non-streaming chat completion."""
    body = {"id": "chatcmpl-bench0001", "object": "chat.completion", "created": 1767225600,
            "model": UPSTREAM_MODEL, "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(WORDS),
                                                 "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": USAGE}
    return json.dumps(body, separators=(",", ":")).encode()


def stream_body() -> bytes:
    """The streamed reply: a role chunk, one chunk per word, a finish chunk, a usage chunk, [DONE]."""
    chunks = [_chunk({"role": "assistant", "content": ""})]
    chunks += [_chunk({"content": word}) for word in WORDS[:-1]]
    chunks.append(_chunk({"content": WORDS[-1]}, "stop"))
    chunks.append(_chunk({}, usage=USAGE))
    assert len(chunks) == STREAM_EVENTS
    events = [b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in chunks]
    return b"".join(events) + b"data: [DONE]\n\n"


def request_body(model: str, stream: bool) -> bytes:
    body = {"model": model, "max_tokens": 64,
            "messages": [{"role": "system", "content": "You answer briefly."},
                         {"role": "user", "content": "Say hello and tell me something short."}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def write_fake_upstream(prefix: Path, port: int) -> Path:
    """Lay out nginx's prefix (bodies, temp dirs, rendered config); returns the config's path."""
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    (prefix / "completion.json").write_bytes(completion_body())
    (prefix / "stream.sse").write_bytes(stream_body())
    conf = (BENCH_DIR / "nginx.conf").read_text()
    conf = conf.replace("@PORT@", str(port)).replace("@ROOT@", str(prefix.resolve()))
    path = prefix / "nginx.conf"
    path.write_text(conf)
    return path


def upstream_url(port: int, model: str) -> str:
    return f"http://127.0.0.1:{port}{UPSTREAM_PATHS[model]}"


def cbgate_toml(upstream_port: int) -> str:
    """The gateway's catalog: two models in the `cloudbase` group, each an `openai` deployment on nginx."""
    lines = []
    for model in (MODEL_JSON, MODEL_SSE):
        lines += ["[[models]]", f'name = "{model}"', "default = true", "",
                  "[[models.deployments]]", 'kind = "openai"', f'name = "fake-{model}"',
                  f'base_url = "{upstream_url(upstream_port, model)}"',
                  f'api_key_env = "{UPSTREAM_KEY_ENV}"', f'model = "{UPSTREAM_MODEL}"', ""]
    return "\n".join(lines)


def litellm_yaml(upstream_port: int, master_key: str) -> str:
    """LiteLLM proxy fronting the same fake: same two models, master key auth, no database."""
    lines = ["model_list:"]
    for model in (MODEL_JSON, MODEL_SSE):
        lines += [f"  - model_name: {model}", "    litellm_params:", f"      model: openai/{UPSTREAM_MODEL}",
                  f"      api_base: {upstream_url(upstream_port, model)}",
                  f"      api_key: os.environ/{UPSTREAM_KEY_ENV}"]
    lines += ["litellm_settings:", "  set_verbose: false", "  turn_off_message_logging: true",
              "general_settings:", f"  master_key: {master_key}", ""]
    return "\n".join(lines)
