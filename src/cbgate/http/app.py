"""The ASGI application: lifespan (store, snapshot, engines), dispatch, errors, client disconnects."""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from cbgate.config import Settings, load_settings
from cbgate.core.access import authenticate_admin
from cbgate.core.admin import Admin
from cbgate.core.model_service import ModelService
from cbgate.core.mcp_gateway import McpGateway
from cbgate.core.context import ContextCounter
from cbgate.core.readiness import Check, engine_check, redis_check, run_checks, store_checks
from cbgate.core.metering import Metering
from cbgate.core.metrics import Metrics, render_engines
from cbgate.core.metrics_share import SharedMetrics
from cbgate.core.reload import reload_settings
from cbgate.core.resolve import Resolver
from cbgate.core.responses import ResponsesService
from cbgate.core.shutdown import ShutdownDeadline
from cbgate.core.tenants import TenantDirectory
from cbgate.core.tracing import Tracing, tracing_from_env
from cbgate.errors import CloudBaseError, InternalError
from cbgate.core.agent_front import AgentFront
from cbgate.core.agent_runs import AgentRunner
from cbgate.http.admin_routes import AdminRoutes
from cbgate.http.agent_routes import AgentRoutes
from cbgate.http.console_files import ConsoleFiles
from cbgate.http.cors import CorsPolicy
from cbgate.http.exchange import Exchange
from cbgate.http.mcp_routes import McpRoutes, mcp_rows
from cbgate.http.route_table import Route, RouteTable
from cbgate.http.routes import model_rows
from cbgate.limits.memory import MemoryLimiter
from cbgate.limits.redis import RedisLimiter
from cbgate.providers.base import Provider
from cbgate.providers.registry import ProviderRegistry
from cbgate.store import limits as stored_limits
from cbgate.store.db import Store
from cbgate.store.ledger import LedgerWriter
from cbgate.store.usage import UsageRecord
from cbgate.logs import ACCESS_WRITER, access_line, printable, setup_logging

log = logging.getLogger("cbgate")


class App:
    def __init__(self, settings: Settings, overrides: dict[str, Provider] | None = None,
                 tracing: Tracing | None = None):
        self.settings = settings
        self.tracing = tracing if tracing is not None else tracing_from_env(settings.env_vars)
        self.overrides = overrides
        # Built by startup() on the serving loop; None until then.
        self.store: Store | None = None
        self.registry: ProviderRegistry | None = None
        self.directory: TenantDirectory | None = None
        self.limiter: MemoryLimiter | RedisLimiter | None = None
        self.metering: Metering | None = None
        self.routes: RouteTable | None = None
        self.agent_front: AgentFront | None = None  # fronted agents' client (tests shorten its timeouts)
        self.admin_api: AdminRoutes | None = None
        self.mcp: McpRoutes | None = None
        self.cors: CorsPolicy | None = None
        self.console: ConsoleFiles | None = None
        self._tasks: list[asyncio.Task] = []
        self.metrics = Metrics()
        self.ledger: LedgerWriter | None = None
        self.deadline = ShutdownDeadline(settings.shutdown_timeout)
        self.tune_interpreter = False  # create_app (real serving) turns it on; in-process tests keep the defaults
        self.records: dict[str, UsageRecord | None] = {}  # request id -> its metered record, for its access line
        self.readiness: list[Check] = []
        self.shared_metrics: SharedMetrics | None = None  # with --workers N: every worker's counts in one scrape

    async def startup(self) -> None:
        self.store = Store(self.settings.database_url)
        await asyncio.to_thread(self.store.migrate)
        directory = await asyncio.to_thread(TenantDirectory, self.store, self.settings.refresh_interval,
                                            self.settings.snapshot_max_age)
        # The spool first: a bad one fails the start in a moment, not after the engines loaded their models.
        self.ledger = LedgerWriter(self.store, self.settings.data_dir / "spool",
                                   spool_max_bytes=self.settings.spool_max_bytes)
        self.registry = ProviderRegistry(self.settings, self.overrides)
        await asyncio.to_thread(self.registry.build)
        await self.registry.start()  # upstream sessions belong to this loop
        await asyncio.to_thread(self.ledger.replay_orphans)  # what a killed run left behind
        self.limiter = make_limiter(self.settings, self.ledger_usage)
        await self.limiter.start()
        metering = self.metering = Metering(self.ledger, self.metrics, self.settings.log_content,
                                            on_record=self._note_record, prompt_counter=self.registry.estimator,
                                            answer_unbilled=self.settings.serve_without_spool,
                                            tracing=self.tracing)
        service = ModelService(directory, Resolver(self.registry), metering, self.limiter, self.tracing)
        counter = ContextCounter(self.registry.estimator)
        responses = ResponsesService(service, self.store, counter, self.settings.responses_ttl)
        admin = Admin(self.store, self.settings)
        self.admin_api = AdminRoutes(admin, directory)  # the admin plane
        self.mcp = McpRoutes(McpGateway(directory, self.registry.upstream, metering, self.limiter, self.settings),
                             self.settings.max_body_bytes, self.deadline)
        self.cors = CorsPolicy(directory)
        self.console = ConsoleFiles()
        self.agent_front = AgentFront(self.registry.upstream, metering, service.admit)
        agents = AgentRoutes(service, AgentRunner(self.store), self.agent_front, admin.agents,
                             self.settings.max_body_bytes, self.deadline)
        self.routes = RouteTable(model_rows(service, responses, counter, self.settings.max_body_bytes,
                                            self.deadline) + agents.rows() + self._plane_rows(), self.cors)
        self.directory = directory
        self._tasks.append(asyncio.create_task(directory.run()))
        self._tasks.append(asyncio.create_task(self.ledger.run()))
        metrics_dir = self.settings.env_vars.get("CBGATE_METRICS_DIR")  # set by `cbgate serve --workers N`
        if metrics_dir:
            self.shared_metrics = SharedMetrics(self.metrics, Path(metrics_dir))
            self._tasks.append(asyncio.create_task(self.shared_metrics.run()))
        self._tasks.append(asyncio.create_task(responses.purge_forever()))
        self.readiness = readiness_checks(self.store, self.registry, self.limiter, self.settings)
        self._reload_on_sighup()

    def _reload_on_sighup(self) -> None:
        """SIGHUP reloads the config file instead of ending the process (core/reload.py says what applies)."""
        def reload() -> None:
            self.settings = reload_settings(self.settings, self.registry, self.metering, self.admin_api.admin)

        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread (tests), or no SIGHUP
            pass

    async def ledger_usage(self, env_ids: list[str]) -> dict[str, int]:
        """Tokens each env used by the ledger, this process's spool flushed first: where quota counters
        are reconciled from."""
        await self.ledger.flush()
        return await asyncio.to_thread(stored_limits.tokens_used, self.store, env_ids)

    def watch_for_shutdown(self) -> None:
        """Start the shutdown deadline on SIGTERM/SIGINT, then let uvicorn's handler do its part. Signals
        reach only the main thread; a gateway run in a thread is stopped by its owner."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)

            def on_signal(signum, frame, previous=previous):
                loop.call_soon_threadsafe(self.deadline.begin)
                if callable(previous):
                    previous(signum, frame)
            signal.signal(sig, on_signal)

    async def shutdown(self) -> None:
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        except (ValueError, RuntimeError, NotImplementedError):
            pass
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.limiter:
            await self.limiter.close()
        if self.ledger:  # uvicorn has drained the requests by now, so every record is in
            try:  # within the deadline; a database that does not answer leaves the records in the spool
                await asyncio.wait_for(self.ledger.close(), timeout=max(0.5, self.deadline.remaining() - 1.0))
            except TimeoutError:
                log.error("the ledger's last flush did not finish in time; its records wait in the spool "
                          "for the next start")
        if self.registry:
            await self.registry.close()
        if self.store:
            self.store.close()
        await asyncio.to_thread(self.tracing.shutdown)  # export the spans still batched
        ACCESS_WRITER.flush()  # the last requests' lines, before uvicorn ends the process (no atexit then)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            return await self.http(scope, receive, send)
        if scope["type"] == "lifespan":
            return await self.lifespan(receive, send)

    async def lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.error("startup failed: %s", exc)
                    try:  # what did start (engine children above all) must not outlive the failed start
                        await self.shutdown()
                    except Exception:
                        log.exception("stopping what a failed startup had started failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self.watch_for_shutdown()
                if self.tune_interpreter:
                    tune_interpreter_for_serving()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope, receive, send) -> None:
        ex = Exchange(scope, receive, send)
        self.records[ex.request_id] = None
        with self.tracing.span(f"{scope['method']} {printable(scope['path'], 100)}",
                               {"http.request.method": scope["method"], "url.path": printable(scope["path"]),
                                "cbgate.request_id": ex.request_id}) as span:
            error = await self.answer(ex)
            if span is not None:  # tracing is on
                span.set_attribute("http.response.status_code", ex.status)
                if getattr(error, "code", None):
                    span.set_attribute("cbgate.code", error.code)
        self._access_log(ex, error)

    async def answer(self, ex: Exchange) -> BaseException | None:
        """Dispatch and answer every failure; returns the error the request ended with, if any."""
        try:
            await self.dispatch(ex)
        except CloudBaseError as err:
            if not err.counted:  # a refusal no request's meter recorded, wherever it was raised
                self.metrics.rejected(err.code)
            if not ex.started:
                await ex.reply_error(err)
            return err
        except (ConnectionAbortedError, asyncio.CancelledError) as exc:
            return exc  # the client left; nothing to answer
        except Exception as exc:
            log.exception("request %s failed", ex.request_id)
            if not ex.started:
                await ex.reply_error(InternalError("the gateway failed to handle this request"))
            return exc
        finally:
            ex.stop_watching()
        return None

    def _note_record(self, record: UsageRecord) -> None:
        if record.request_id in self.records:  # only while its request is being answered: nothing piles up
            self.records[record.request_id] = record

    def _access_log(self, ex: Exchange, error: BaseException | None) -> None:
        record = self.records.pop(ex.request_id, None)
        code = record.code if record is not None else getattr(error, "code", None)
        status = ex.status or (499 if isinstance(error, (ConnectionAbortedError, asyncio.CancelledError)) else 500)
        routed = record is not None and record.deployment
        access_line(status, code, ex.request_id, (time.monotonic() - ex.began) * 1000,
                    method=ex.scope["method"], path=ex.scope["path"], env=record.env_id if record else "",
                    model=record.model if routed else "", prompt_tokens=record.prompt_tokens if record else 0,
                    completion_tokens=record.completion_tokens if record else 0)

    async def dispatch(self, ex: Exchange) -> None:
        await self.routes.dispatch(ex)

    def _plane_rows(self) -> list[Route]:
        """The rows beside the model surfaces: MCP, the admin plane, the console, metrics and health."""
        read = ("GET", "HEAD")
        # the admin plane and the console keep their own tables below these prefixes ("*": any method)
        return [*mcp_rows(self.mcp),  # the MCP surface: /v1/cloudrun/{service}/messages
                Route("/admin/v1/{rest*}", {"*": lambda ex, p: self.admin_api.handle(ex)}),
                Route("/console/{rest*}", {"*": lambda ex, p: self.console.handle(ex, list(p["rest"]))}),
                Route("/metrics", dict.fromkeys(read, self._metrics)),
                Route("/livez", dict.fromkeys(read, self._alive)),
                Route("/healthz", dict.fromkeys(read, self._alive)),  # its older name
                Route("/readyz", dict.fromkeys(read, self._ready))]

    async def _metrics(self, ex: Exchange, params: dict) -> None:
        # Its labels name every environment: the operator's view, not a tenant's.
        authenticate_admin(self.directory.current(), ex.header(b"authorization"),
                           ex.header(b"host")).require_operator()
        revision = self.directory.snapshot.revision
        text = (await asyncio.to_thread(self.shared_metrics.render, revision) if self.shared_metrics
                else self.metrics.render(revision))
        text += render_engines(self.registry.engine_stats())  # this worker's own engine
        await ex.reply(200, text, [(b"content-type", b"text/plain; version=0.0.4")])

    async def _alive(self, ex: Exchange, params: dict) -> None:
        await ex.reply_json({"status": "ok"})  # alive: the process answers

    async def _ready(self, ex: Exchange, params: dict) -> None:
        checks = await run_checks(self.readiness)
        ready = all(v == "ok" for v in checks.values())
        await ex.reply_json({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)


def readiness_checks(store: Store, registry: ProviderRegistry, limiter, settings: Settings) -> list[Check]:
    """Ready: the store answers with every migration applied, the embedded engine evaluates, and Redis
    answers where it is configured."""
    checks = store_checks(store) + [engine_check(registry)]
    return checks + [redis_check(limiter)] if settings.redis_url else checks


def make_limiter(settings: Settings, usage_source):
    """Shared limits across replicas when Redis is configured, else this process's own counters; quota
    counters are reconciled with the ledger through `usage_source`."""
    if settings.redis_url:
        return RedisLimiter(settings.redis_url, settings.redis_prefix,
                            fail_open=settings.ratelimit_failure == "fail-open", usage_source=usage_source,
                            reconcile_interval=settings.quota_reconcile_interval)
    return MemoryLimiter(usage_source, settings.quota_reconcile_interval)


def create_app() -> App:
    """Factory for uvicorn (also with --workers): settings come from the CBGATE_* environment."""
    setup_logging()
    app = App(load_settings())
    app.tune_interpreter = True
    return app


def tune_interpreter_for_serving() -> None:
    """Keep the event loop from stalling behind the collector and background threads. What startup
    built (modules, catalog, pools) lives as long as the process: freeze it out of every collection, and
    collect young objects less often (bench/: p99 at 32 clients ~55 -> ~35 ms). Hand the GIL over every
    1 ms instead of 5, so that the ledger drain and the snapshot refresh threads never hold the loop up
    for long (p99 at 1 client ~8-12 -> ~5.5 ms). Throughput stayed the same within the bench's noise
    (0.5 ms cost ~7% of it)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)
    sys.setswitchinterval(0.001)
