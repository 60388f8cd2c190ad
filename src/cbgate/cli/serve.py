"""`cbgate serve`: first-start setup, model files, then uvicorn."""
from __future__ import annotations

import os

from cbgate.cli.common import open_admin
from cbgate.config import Settings
from cbgate.core.admin import Admin
from cbgate.providers.local.source import resolve_model_file


def first_start(admin: Admin, host: str, port: int) -> None:
    """With an empty data directory, create an environment and a server key and show them once."""
    if admin.list_envs():
        return
    env_id = admin.create_env()
    _, key = admin.create_key(env_id)
    model = admin.settings.default_models[0] if admin.settings.default_models else "MODEL"
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"cbgate: created environment {env_id} and its first server API key.\n"
          f"cbgate: the key is shown only this once; keep it somewhere safe:\n\n    {key}\n\n"
          f"Try it:\n\n    curl http://{shown_host}:{port}/v1/ai/cloudbase/chat/completions \\\n"
          f"      -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
          f"      -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'\n",
          flush=True)


def prepare_models(settings: Settings) -> None:
    """Build or fetch model files before the server starts, so progress and errors reach the terminal."""
    for model in settings.catalog:
        for deployment in model.deployments:
            if deployment.kind == "local":
                resolve_model_file(deployment.options["source"], settings.data_dir / "models")


def cmd_serve(args) -> None:
    import uvicorn

    admin = open_admin(args)
    os.environ["CBGATE_DATA_DIR"] = str(admin.settings.data_dir)
    first_start(admin, args.host, args.port)
    admin.store.close()
    prepare_models(admin.settings)
    uvicorn.run("cbgate.http.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, loop="auto", http="httptools", access_log=False,
                log_level=os.environ.get("CBGATE_LOG_LEVEL", "info").lower(), timeout_graceful_shutdown=30)


def register(sub, common) -> None:
    serve = sub.add_parser("serve", parents=[common], help="serve the CloudBase AI API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (one per core is a good start)")
    serve.set_defaults(func=cmd_serve)
