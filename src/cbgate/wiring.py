"""The composition root: what one gateway process is made of, built once on the serving loop and
stopped in the reverse order. The ASGI application (`http/app.py`) only serves what this builds.

A new surface or resource adds its service here and its rows to the route table; the reloadable
settings live in one holder (`config.LiveSettings`) that every reader consults, so a SIGHUP reaches
all of them at once (the admin plane's group listing included).
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Callable

from cbgate.config import LiveSettings, Settings
from cbgate.core.admin import Admin
from cbgate.core.agent_front import AgentFront
from cbgate.core.agent_loop import AgentRuns
from cbgate.core.agent_runs import AgentRunner
from cbgate.core.budgets import BudgetGate
from cbgate.core.context import ContextCounter
from cbgate.core.metering import Metering
from cbgate.core.metrics import Metrics
from cbgate.core.metrics_share import SharedMetrics
from cbgate.core.model_service import ModelService
from cbgate.core.readiness import Check, engine_check, redis_check, store_checks
from cbgate.core.reload import reload_settings
from cbgate.core.resolve import Resolver
from cbgate.core.responses import ResponsesService
from cbgate.core.shutdown import ShutdownDeadline
from cbgate.core.tenants import TenantDirectory
from cbgate.core.tracing import Tracing
from cbgate.core.mcp_gateway import McpGateway
from cbgate.http.admin_routes import AdminRoutes
from cbgate.http.mcp_routes import McpRoutes, mcp_rows
from cbgate.http.agent_routes import AgentRoutes
from cbgate.http.console_files import ConsoleFiles
from cbgate.http.cors import CorsPolicy
from cbgate.http.operations_routes import OperationsRoutes
from cbgate.http.route_table import RouteTable
from cbgate.http.routes import model_rows
from cbgate.limits.budget_memory import MemoryBudgets
from cbgate.limits.budget_redis import RedisBudgets
from cbgate.limits.budgets import Counter
from cbgate.limits.memory import MemoryLimiter
from cbgate.limits.redis import RedisLimiter
from cbgate.providers.base import Provider
from cbgate.providers.registry import ProviderRegistry
from cbgate.store import budgets as stored_budgets
from cbgate.store import limits as stored_limits
from cbgate.store.db import Store
from cbgate.store.ledger import LedgerWriter
from cbgate.store.usage import UsageRecord

log = logging.getLogger("cbgate")


class Wiring:
    def __init__(self, settings: Settings, tracing: Tracing, metrics: Metrics, deadline: ShutdownDeadline,
                 overrides: dict[str, Provider] | None = None,
                 on_record: Callable[[UsageRecord], None] | None = None):
        self.live = LiveSettings(settings)
        self.tracing = tracing
        self.metrics = metrics
        self.deadline = deadline
        self.overrides = overrides
        self.on_record = on_record  # the access log's view of a finished request
        # Built by start() on the serving loop; None until then.
        self.store: Store | None = None
        self.directory: TenantDirectory | None = None
        self.ledger: LedgerWriter | None = None
        self.registry: ProviderRegistry | None = None
        self.limiter: MemoryLimiter | RedisLimiter | None = None
        self.budgets: BudgetGate | None = None
        self.clock: Callable[[], float] = time.time  # what time it is for budgets: which period a request is in
        self.metering: Metering | None = None
        self.admin: Admin | None = None
        self.agent_front: AgentFront | None = None  # fronted agents' client (tests shorten its timeouts)
        self.routes: RouteTable | None = None
        self.readiness: list[Check] = []
        self.shared_metrics: SharedMetrics | None = None  # with --workers N: every worker's counts in one scrape
        self.tasks: list[asyncio.Task] = []

    @property
    def settings(self) -> Settings:
        return self.live.current

    async def start(self) -> None:
        settings = self.settings
        self.store = Store(settings.database_url)
        await asyncio.to_thread(self.store.migrate)
        self.directory = await asyncio.to_thread(TenantDirectory, self.store, settings.refresh_interval,
                                                 settings.snapshot_max_age)
        # The spool first: a bad one fails the start in a moment, not after the engines loaded their models.
        self.ledger = LedgerWriter(self.store, settings.data_dir / "spool", spool_max_bytes=settings.spool_max_bytes)
        self.registry = ProviderRegistry(settings, self.overrides)
        await asyncio.to_thread(self.registry.build)
        await self.registry.start()  # upstream sessions belong to this loop
        await asyncio.to_thread(self.ledger.replay_orphans)  # what a killed run left behind
        self.limiter = make_limiter(settings, self.ledger_usage)
        await self.limiter.start()
        self.budgets = BudgetGate(make_budget_counter(settings, self.limiter, self.ledger_spend, self.clock),
                                  self.clock)
        await self.budgets.counter.start()
        self.metering = Metering(self.ledger, self.metrics, settings.log_content, on_record=self.on_record,
                                 prompt_counter=self.registry.estimator,
                                 answer_unbilled=settings.serve_without_spool, tracing=self.tracing)
        self.admin = Admin(self.store, self.live)
        self.readiness = readiness_checks(self.store, self.registry, self.limiter, settings)
        self._build_routes()
        self.tasks += [asyncio.create_task(self.directory.run()), asyncio.create_task(self.ledger.run())]
        metrics_dir = settings.env_vars.get("CBGATE_METRICS_DIR")  # set by `cbgate serve --workers N`
        if metrics_dir:
            self.shared_metrics = SharedMetrics(self.metrics, Path(metrics_dir))
            self.tasks.append(asyncio.create_task(self.shared_metrics.run()))

    def _build_routes(self) -> None:
        """The services behind the edge, and the route table's rows for each plane."""
        settings = self.settings
        service = ModelService(self.directory, Resolver(self.registry), self.metering, self.limiter, self.tracing,
                               budgets=self.budgets)
        counter = ContextCounter(self.registry.estimator)
        responses = ResponsesService(service, self.store, counter, settings.responses_ttl)
        self.tasks.append(asyncio.create_task(responses.purge_forever()))
        self.agent_front = AgentFront(self.registry.upstream, self.metering, service.admit)
        gateway = McpGateway(self.directory, self.registry.upstream, self.metering, self.limiter, settings)
        runner = AgentRunner(self.store)
        agents = AgentRoutes(service, runner, AgentRuns(service, runner, gateway), self.agent_front,
                             self.admin.agents, settings.max_body_bytes, self.deadline)
        operations = OperationsRoutes(self, AdminRoutes(self.admin, self.directory, self.budgets.live), ConsoleFiles())
        mcp = McpRoutes(gateway, settings.max_body_bytes, self.deadline)
        self.routes = RouteTable(model_rows(service, responses, counter, settings.max_body_bytes, self.deadline)
                                 + agents.rows() + mcp_rows(mcp) + operations.rows(), CorsPolicy(self.directory))

    def reload(self) -> None:
        """SIGHUP: the config file read again; core/reload.py says what applies at once."""
        self.live.current = reload_settings(self.settings, self.registry, self.metering)

    async def ledger_usage(self, env_ids: list[str]) -> dict[str, int]:
        """Tokens each env used by the ledger, this process's spool flushed first: where quota counters
        are reconciled from."""
        await self.ledger.flush()
        return await asyncio.to_thread(stored_limits.tokens_used, self.store, env_ids)

    async def ledger_spend(self, counters: list[Counter]) -> dict[str, int]:
        """What each budget counter's period spent by the ledger, this process's spool flushed first: where a
        budget counter is rebuilt from (on start, in a new period, after Redis lost it)."""
        await self.ledger.flush()

        def query() -> dict[str, int]:
            return {c.key: stored_budgets.spent(self.store, c.env_id, c.key_id, c.unit, c.start, c.end)
                    for c in counters}
        return await asyncio.to_thread(query)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.budgets:
            await self.budgets.counter.close()
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


def readiness_checks(store: Store, registry: ProviderRegistry, limiter, settings: Settings) -> list[Check]:
    """Ready: the store answers with every migration applied, the embedded engine evaluates, and Redis
    answers where it is configured."""
    checks = store_checks(store) + [engine_check(registry)]
    return checks + [redis_check(limiter)] if settings.redis_url else checks


def make_budget_counter(settings: Settings, limiter, spend_source, clock):
    """Budgets share the limiter's Redis (and its connection) when there is one, else count in this process."""
    if isinstance(limiter, RedisLimiter):
        return RedisBudgets(limiter.redis, settings.redis_prefix, spend_source, settings.quota_reconcile_interval,
                            clock)
    return MemoryBudgets(spend_source, settings.quota_reconcile_interval, clock)


def make_limiter(settings: Settings, usage_source):
    """Shared limits across replicas when Redis is configured, else this process's own counters; quota
    counters are reconciled with the ledger through `usage_source`."""
    if settings.redis_url:
        return RedisLimiter(settings.redis_url, settings.redis_prefix,
                            fail_open=settings.ratelimit_failure == "fail-open", usage_source=usage_source,
                            reconcile_interval=settings.quota_reconcile_interval)
    return MemoryLimiter(usage_source, settings.quota_reconcile_interval)
