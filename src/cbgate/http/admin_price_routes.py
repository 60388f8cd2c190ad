"""The admin API's price routes (contributed to AdminRoutes): list every model's price, set a model's price
or one tier of it, delete it. Setting and deleting are the operator's: prices are what budgets count."""
from __future__ import annotations

from typing import Awaitable, Callable

from cbgate.core.admin import Admin
from cbgate.errors import InvalidParam

PRICE_FIELDS = ("input", "output", "cache", "tier", "currency")


def _optional_text(value, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidParam(f"{name} must be a string")
    return value


class PriceRoutes:
    def __init__(self, admin: Admin, run: Callable[..., Awaitable]):
        self.admin = admin
        self.run = run  # off the event loop (AdminRoutes.run)

    def routes(self) -> list:
        return [("GET", "/envs/{env}/prices", self.list_prices, False),
                ("PUT", "/envs/{env}/prices/{group}/{model}", self.set_price, True),
                ("DELETE", "/envs/{env}/prices/{group}/{model}", self.delete_price, True)]

    async def list_prices(self, call):
        group = call.query.get("group") or None
        return 200, {"data": await self.run(self.admin.prices.list_prices, call.params["env"], group)}

    async def set_price(self, call):
        call.principal.require_operator()
        body = await call.body()
        unknown = sorted(set(body) - set(PRICE_FIELDS))
        if unknown:
            raise InvalidParam(f"unknown field {unknown[0]!r}; a price has {', '.join(PRICE_FIELDS)}")
        if body.get("input") is None or body.get("output") is None:
            raise InvalidParam("input and output prices (per 1,000 tokens) are required, e.g. \"0.0008\"")
        view = await self.run(self.admin.prices.set_price, call.params["env"], call.params["group"],
                              call.params["model"], body["input"], body["output"], body.get("cache"),
                              _optional_text(body.get("tier"), "tier"), _optional_text(body.get("currency"), "currency"))
        return 200, view

    async def delete_price(self, call):
        call.principal.require_operator()
        view = await self.run(self.admin.prices.delete_price, call.params["env"], call.params["group"],
                              call.params["model"], call.query.get("tier") or None)
        return 200, view
