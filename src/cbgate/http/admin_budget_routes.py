"""The admin API's budget routes (contributed to AdminRoutes): list an environment's budgets, set one (one per
environment, key and period: PUT replaces its amount), delete one. Setting and deleting are the operator's: a
budget caps what an environment may spend, so the environment's own keys may read it, not lift it.

A serving gateway shows each budget's spent and reserved from its live counters (`live`), never less than
the ledger says was spent."""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

from cbgate.core.admin import Admin
from cbgate.errors import InvalidParam

log = logging.getLogger("cbgate.admin")
BUDGET_FIELDS = ("key_id", "period", "amount", "currency", "tokens")
Live = Callable[[list], Awaitable[dict[str, tuple[int, int]]]]  # BudgetGate.live


class BudgetRoutes:
    def __init__(self, admin: Admin, run: Callable[..., Awaitable], live: Live | None = None):
        self.admin = admin
        self.run = run  # off the event loop (AdminRoutes.run)
        self.live = live

    def routes(self) -> list:
        return [("GET", "/envs/{env}/budgets", self.list_budgets, False),
                ("PUT", "/envs/{env}/budgets", self.set_budget, True),
                ("DELETE", "/envs/{env}/budgets/{budget_id}", self.delete_budget, True)]

    async def list_budgets(self, call):
        rows = await self.run(self.admin.budgets.rows, call.params["env"])
        counted = {}
        if self.live is not None and rows:
            try:
                counted = await self.live(rows)
            except Exception as exc:  # Redis away: the ledger's spend is still worth showing
                log.warning("could not read budget counters: %s", exc)
        return 200, {"data": await self.run(self.admin.budgets.views, rows, counted)}

    async def set_budget(self, call):
        call.principal.require_operator()
        body = await call.body()
        unknown = sorted(set(body) - set(BUDGET_FIELDS))
        if unknown:
            raise InvalidParam(f"unknown field {unknown[0]!r}; a budget has {', '.join(BUDGET_FIELDS)}")
        key_id, currency = body.get("key_id"), body.get("currency")
        if key_id is not None and not isinstance(key_id, str):
            raise InvalidParam("key_id must be an API key's id, or null for the whole environment")
        if currency is not None and not isinstance(currency, str):
            raise InvalidParam("currency must be a three-letter code like CNY")
        view = await self.run(self.admin.budgets.set_budget, call.params["env"], key_id, body.get("period"),
                              body.get("amount"), body.get("tokens"), currency)
        return 200, view

    async def delete_budget(self, call):
        call.principal.require_operator()
        return 200, await self.run(self.admin.budgets.delete_budget, call.params["env"], call.params["budget_id"])
