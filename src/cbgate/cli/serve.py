"""`cbgate serve`: check the port, first-start setup, model files, then uvicorn."""
from __future__ import annotations

import os
import socket
import sys

from cbgate.cli.commands import add_command
from cbgate.cli.common import open_admin
from cbgate.config import ConfigError, Settings
from cbgate.core.admin import Admin
from cbgate.core.metrics_share import prepare_metrics_dir
from cbgate.http.server_protocol import GatewayProtocol, header_timeout
from cbgate.logs import FORMATS, setup_logging, uvicorn_log_config
from cbgate.providers.local.command import EngineOptions
from cbgate.providers.local.source import resolve_model_file
from cbgate.providers.local.threads import CALIBRATE_ENV, tuned
from cbgate.providers.registry import catalog_problems

FIRST_PROMPT = "Say hello in one short sentence."


def shown_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def first_start_text(env_id: str, key: str, model: str, base: str, data_dir_flag: str) -> str:
    """Everything a newcomer needs, once: the key, a curl that streams at once, the SDKs' base URLs and
    the console with the command that makes its sign-in token."""
    body = ('{"model": "%s", "stream": true, "max_tokens": 48, '
            '"messages": [{"role": "user", "content": "%s"}]}' % (model, FIRST_PROMPT))
    return (f"cbgate: created environment {env_id} and its first server API key.\n"
            f"cbgate: the key is shown only this once; keep it somewhere safe:\n\n    {key}\n\n"
            f"Try it (streams the answer as it is written):\n\n"
            f"    curl {base}/v1/ai/cloudbase/chat/completions -N \\\n"
            f"      -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
            f"      -d '{body}'\n\n"
            f"SDKs:\n"
            f"    OpenAI SDK (Python, JS):  base_url = {base}/v1/ai/cloudbase/v1\n"
            f"    @cloudbase/ai SDK:        baseUrl = {base}/v1, then ai.createModel(\"cloudbase\")\n"
            f"    any HTTP client:          POST {base}/v1/ai/cloudbase/chat/completions\n\n"
            f"The web console: {base}/console\n"
            f"    sign in with an operator token from: cbgate admin token create{data_dir_flag}\n")


def first_start(admin: Admin, host: str, port: int, data_dir_flag: str = "") -> None:
    """With an empty data directory, create an environment and a server key and show them once."""
    if admin.list_envs():
        return
    env_id = admin.create_env()
    _, key = admin.create_key(env_id)
    model = admin.settings.default_models[0] if admin.settings.default_models else "MODEL"
    base = f"http://{shown_host(host)}:{port}"
    print(first_start_text(env_id, key, model, base, data_dir_flag), flush=True)


def check_port_free(host: str, port: int) -> None:
    """Fail in a second, not after the model has loaded, when something already listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another cbgate "
                              f"running? choose another port with --port)") from None


def prepare_models(settings: Settings) -> None:
    """Build or fetch model files, find the engine and measure its threads (once per machine, model and build)
    before the server starts, so progress and errors reach the terminal as one clear line."""
    for model in settings.catalog:
        for deployment in model.deployments:
            if deployment.kind == "local":
                path = resolve_model_file(deployment.options["source"], settings.data_dir / "models")
                tuned(EngineOptions.from_deployment(path, deployment.options, settings.env_vars), settings.env_vars,
                      say=lambda message: print(f"cbgate: {message}", file=sys.stderr, flush=True))


def cmd_serve(args) -> None:
    import uvicorn

    os.environ["CBGATE_LOG_FORMAT"] = args.log_format  # the workers (new processes) read these
    if args.no_access_log:
        os.environ["CBGATE_ACCESS_LOG"] = "off"
    setup_logging(args.log_format)
    try:
        header_timeout()  # checked here, once, with a clear message; each worker reads it again
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    check_port_free(args.host, args.port)
    admin = open_admin(args, create=True)
    problems = catalog_problems(admin.settings)
    if problems:  # said here in one line, not as a traceback from inside the server's startup
        raise ConfigError("the model catalog cannot be served: " + "; ".join(problems))
    os.environ["CBGATE_DATA_DIR"] = str(admin.settings.data_dir)
    first_start(admin, args.host, args.port, f" --data-dir {args.data_dir}" if args.data_dir else "")
    admin.store.close()
    prepare_models(admin.settings)
    if os.environ.get(CALIBRATE_ENV, "").strip().lower() == "again":
        os.environ[CALIBRATE_ENV] = "auto"  # measured again just now: the workers take that measurement
    os.environ["CBGATE_MODEL_FILES_READY"] = "1"  # the workers find them without saying so again
    if args.workers > 1:  # each worker publishes its counts there, so any of them answers /metrics for all
        os.environ["CBGATE_METRICS_DIR"] = str(prepare_metrics_dir(admin.settings.data_dir, os.getpid()))
    uvicorn.run("cbgate.http.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, loop="auto", http=GatewayProtocol, access_log=False, proxy_headers=False,
                log_config=uvicorn_log_config(args.log_format),
                log_level=os.environ.get("CBGATE_LOG_LEVEL", "info").lower(),
                # streams are cut (with an error event) before this; the app's watchdog ends the rest
                timeout_graceful_shutdown=max(1, int(admin.settings.shutdown_timeout)))


def register(sub, common) -> None:
    serve = add_command(sub, "serve", "serve the CloudBase AI API (creates the data directory on first start)",
                        ["cbgate serve", "cbgate serve --host 0.0.0.0 --port 8080 --workers 2 --log-format json"],
                        [common])
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; "
                                                            "0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080), e.g. 9000")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes (default 1); each runs its own embedded engine, so with the "
                            "embedded model keep 1; more suit models served upstream, e.g. 2")
    serve.add_argument("--log-format", choices=FORMATS, default=os.environ.get("CBGATE_LOG_FORMAT", "text")
                       if os.environ.get("CBGATE_LOG_FORMAT") in FORMATS else "text",
                       help="text lines, or json: one JSON object a line for every log (default: "
                            "$CBGATE_LOG_FORMAT when it is text or json, else text)")
    serve.add_argument("--no-access-log", action="store_true",
                       help="no line per request (default: one line each: status, code, model, tokens, "
                            "latency, request id)")
    serve.set_defaults(func=cmd_serve)
