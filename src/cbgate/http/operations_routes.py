"""The rows beside the model surfaces: the admin plane and the console (each keeps its own table below
its prefix), metrics for the operator, and health (`/livez`, `/healthz` its older name, `/readyz`)."""
from __future__ import annotations

import asyncio

from cbgate.core.access import authenticate_admin
from cbgate.core.metrics import render_engines
from cbgate.core.readiness import run_checks
from cbgate.http.admin_routes import AdminRoutes
from cbgate.http.console_files import ConsoleFiles
from cbgate.http.exchange import Exchange
from cbgate.http.route_table import Route

READ = ("GET", "HEAD")


class OperationsRoutes:
    def __init__(self, wiring, admin: AdminRoutes, console: ConsoleFiles):
        self.wiring = wiring  # the composition root: its directory, metrics, registry and checks
        self.admin = admin
        self.console = console

    def rows(self) -> list[Route]:
        return [Route("/admin/v1/{rest*}", {"*": lambda ex, p: self.admin.handle(ex)}),  # "*": any method
                Route("/console/{rest*}", {"*": lambda ex, p: self.console.handle(ex, list(p["rest"]))}),
                Route("/metrics", dict.fromkeys(READ, self.metrics)),
                Route("/livez", dict.fromkeys(READ, self.alive)),
                Route("/healthz", dict.fromkeys(READ, self.alive)),
                Route("/readyz", dict.fromkeys(READ, self.ready))]

    async def metrics(self, ex: Exchange, params: dict) -> None:
        # Its labels name every environment: the operator's view, not a tenant's.
        w = self.wiring
        authenticate_admin(w.directory.current(), ex.header(b"authorization"), ex.header(b"host")).require_operator()
        revision = w.directory.snapshot.revision
        text = (await asyncio.to_thread(w.shared_metrics.render, revision) if w.shared_metrics
                else w.metrics.render(revision))
        text += render_engines(w.registry.engine_stats())  # this worker's own engine
        await ex.reply(200, text, [(b"content-type", b"text/plain; version=0.0.4")])

    async def alive(self, ex: Exchange, params: dict) -> None:
        await ex.reply_json({"status": "ok"})  # alive: the process answers

    async def ready(self, ex: Exchange, params: dict) -> None:
        checks = await run_checks(self.wiring.readiness)
        ready = all(v == "ok" for v in checks.values())
        await ex.reply_json({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)
