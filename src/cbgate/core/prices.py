"""Which price a request pays (`PriceBook`, on the hot path: two dict lookups in the snapshot and the
catalog), and the price operations the CLI and the admin API share (`PriceAdmin`).

An environment's own price for a model (set with `cbgate price set` or the admin API) wins; for the
`cloudbase` catalog the config file's price applies otherwise. Vendor presets carry no prices of ours: a
model nobody priced costs nothing and is shown as unpriced.
"""
from __future__ import annotations

from typing import Callable

from cbgate.config import Settings
from cbgate.core.resolve import CATALOG_GROUP
from cbgate.core.tenants import TenantSnapshot
from cbgate.errors import InvalidParam, ModelNotSupported
from cbgate.pricing import (DEFAULT_CURRENCY, PriceError, PriceTable, Tier, check_currency, parse_tier,
                            price_micros, with_tier)
from cbgate.store import prices as stored
from cbgate.store.db import Store


def catalog_price(settings: Settings, group: str, model: str) -> PriceTable | None:
    if group != CATALOG_GROUP:
        return None
    found = settings.catalog_model(model)
    return found.price if found is not None else None


class PriceBook:
    """The price a request starts under. `settings` is read through a callable: a SIGHUP replaces them."""

    def __init__(self, settings: Callable[[], Settings]):
        self.settings = settings

    def price(self, snapshot: TenantSnapshot, env_id: str, group: str, model: str) -> PriceTable | None:
        own = snapshot.prices.get((env_id, group, model))
        return own if own is not None else catalog_price(self.settings(), group, model)


class PriceAdmin:
    def __init__(self, store: Store, settings: Callable[[], Settings],
                 list_models: Callable[[str, str | None], list[tuple[str, str, bool]]]):
        self.store = store
        self.settings = settings
        self.list_models = list_models  # (env, group or None) -> (group, model, enabled); checks the env

    def list_prices(self, env_id: str, group: str | None = None) -> list[dict]:
        """Every model the env can call, with its price and where it comes from (env, config, or none)."""
        models = self.list_models(env_id, group)
        own = stored.list_prices(self.store, env_id)
        views = []
        for group_name, model, _ in models:
            table = own.get((env_id, group_name, model))
            source = "env" if table is not None else None
            if table is None:
                table = catalog_price(self.settings(), group_name, model)
                source = "config" if table is not None else None
            view = table.view() if table is not None else {"currency": None, "type": "Unpriced", "tiers": []}
            views.append({"group": group_name, "model": model, "source": source, **view})
        return views

    def _check_model(self, env_id: str, group: str, model: str) -> None:
        if (group, model) not in {(g, m) for g, m, _ in self.list_models(env_id, group)}:
            raise ModelNotSupported(f"model {model!r} is not in group {group!r}")

    def set_price(self, env_id: str, group: str, model: str, input_price, output_price, cache_price=None,
                  tier: str | None = None, currency: str | None = None) -> dict:
        """Set the model's price, or one tier of it (`tier` "0-16k"); prices per 1,000 tokens. Without a
        tier the price is uniform and replaces the whole table."""
        self._check_model(env_id, group, model)
        own = stored.list_prices(self.store, env_id).get((env_id, group, model))
        try:
            start, end = parse_tier(tier) if tier is not None else (0, None)
            cache = price_micros(cache_price, "cache") if cache_price is not None else None
            new = Tier(start, end, price_micros(input_price, "input"), price_micros(output_price, "output"), cache)
            currency = check_currency(currency or (own.currency if own is not None else DEFAULT_CURRENCY))
            table = with_tier(own, new, currency)
        except PriceError as exc:
            raise InvalidParam(str(exc)) from None
        stored.set_price(self.store, env_id, group, model, table)
        return self.price_view(env_id, group, model)

    def delete_price(self, env_id: str, group: str, model: str, tier: str | None = None) -> dict:
        """Delete the env's price of the model (or one tier of it); the config's price, if any, applies again."""
        self._check_model(env_id, group, model)
        own = stored.list_prices(self.store, env_id).get((env_id, group, model))
        if own is None:
            raise InvalidParam(f"model {model!r} of group {group!r} has no price set in this environment")
        if tier is None:
            stored.delete_price(self.store, env_id, group, model)
        else:
            try:
                bounds = parse_tier(tier)
            except PriceError as exc:
                raise InvalidParam(str(exc)) from None
            kept = tuple(t for t in own.tiers if (t.start, t.end) != bounds)
            if len(kept) == len(own.tiers):
                raise InvalidParam(f"the price of {model!r} has no tier {tier!r}")
            if kept:
                stored.set_price(self.store, env_id, group, model, PriceTable(own.currency, kept))
            else:
                stored.delete_price(self.store, env_id, group, model)
        return self.price_view(env_id, group, model)

    def price_view(self, env_id: str, group: str, model: str) -> dict:
        return next(v for v in self.list_prices(env_id, group) if v["model"] == model)
