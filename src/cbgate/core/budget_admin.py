"""Budget operations the CLI and the admin API share (`Admin.budgets`): set (one budget per environment,
key and period: setting it again replaces its amount), list, show, delete; each budget shown with what its
current period spent by the ledger (a serving gateway overlays its live counters: `BudgetGate.live`)."""
from __future__ import annotations

import os
import time
from typing import Callable

from cbgate.core.budgets import MAX_TOKENS, PERIODS, TOKENS, counter_for, iso, parse_amount, show
from cbgate.errors import InvalidParam, InvalidPath
from cbgate.pricing import DEFAULT_CURRENCY, PriceError, check_currency
from cbgate.store import budgets as stored
from cbgate.store import envs as stored_envs
from cbgate.store.budgets import BudgetRow
from cbgate.store.db import Store


def view(budget: BudgetRow, spent: int, reserved: int, now: float) -> dict:
    counter = counter_for(budget, now)
    return {"id": budget.id, "env": budget.env_id, "key_id": budget.key_id, "kind": budget.kind,
            "period": budget.period, "limit": show(budget, budget.limit), "currency": budget.currency,
            "spent": show(budget, spent), "reserved": show(budget, reserved), "resets_at": iso(counter.end)}


class BudgetAdmin:
    def __init__(self, store: Store, require_env: Callable[[str], None], clock: Callable[[], float] = time.time):
        self.store = store
        self.require_env = require_env
        self.clock = clock

    def rows(self, env_id: str) -> list[BudgetRow]:
        self.require_env(env_id)
        return stored.list_budgets(self.store, env_id)

    def list_budgets(self, env_id: str) -> list[dict]:
        return self.views(self.rows(env_id))

    def views(self, budgets: list[BudgetRow], live: dict[str, tuple[int, int]] | None = None) -> list[dict]:
        """Each budget with its current period's spend: the ledger's, or a live counter's (spent, reserved)
        where the serving gateway has one (never less than the ledger's)."""
        now = self.clock()
        return [self._view(b, now, (live or {}).get(b.id)) for b in budgets]

    def get_budget(self, env_id: str, budget_id: str) -> dict:
        return self._view(self._row(env_id, budget_id), self.clock())

    def set_budget(self, env_id: str, key_id: str | None, period: str, amount=None, tokens=None,
                   currency: str | None = None) -> dict:
        """A money budget (`amount`, e.g. "12.50", in `currency`, default CNY) or a token budget (`tokens`)."""
        self.require_env(env_id)
        if period not in PERIODS:
            raise InvalidParam(f"period must be one of {', '.join(PERIODS)}, got {str(period)[:20]!r}")
        if key_id is not None:
            if not isinstance(key_id, str) or not any(k.id == key_id for k in stored_envs.list_keys(self.store, env_id)):
                raise InvalidParam(f"key {ascii(key_id)[:80]} is not an API key of environment {env_id}")
        if (amount is None) == (tokens is None):
            raise InvalidParam("give either amount (money, e.g. \"12.50\") or tokens, not both")
        if tokens is not None:
            if currency is not None:
                raise InvalidParam("a token budget has no currency")
            if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= MAX_TOKENS:
                raise InvalidParam(f"tokens must be a whole number from 1 to {MAX_TOKENS}")
            kind, limit = TOKENS, tokens
        else:
            try:
                kind, limit = "money", parse_amount(amount)
                currency = check_currency(currency if currency is not None else DEFAULT_CURRENCY)
            except (ValueError, PriceError) as exc:
                raise InvalidParam(str(exc)) from None
        row = stored.put_budget(self.store, "bud-" + os.urandom(6).hex(), env_id, key_id, period, kind, limit,
                                currency if kind != TOKENS else None)
        return self._view(row, self.clock())

    def delete_budget(self, env_id: str, budget_id: str) -> dict:
        row = self._row(env_id, budget_id)
        shown = self._view(row, self.clock())
        stored.delete_budget(self.store, env_id, budget_id)
        return shown

    def _row(self, env_id: str, budget_id: str) -> BudgetRow:
        self.require_env(env_id)
        row = stored.get_budget(self.store, env_id, budget_id)
        if row is None:
            raise InvalidPath(f"environment {env_id} has no budget {ascii(budget_id)[:80]}")
        return row

    def _view(self, budget: BudgetRow, now: float, live: tuple[int, int] | None = None) -> dict:
        counter = counter_for(budget, now)
        spent = stored.spent(self.store, budget.env_id, budget.key_id, counter.unit, counter.start, counter.end)
        if live is None:
            return view(budget, spent, 0, now)
        return view(budget, max(spent, live[0]), live[1], now)
