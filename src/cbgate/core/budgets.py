"""Budgets: what an environment, or one API key of it, may spend per day, per month (UTC) or in total, in
money (micro-units of a currency) or in tokens; and the admission that holds them (`BudgetGate`).

Admission reserves each budget's share of the request's worst case: the prompt counted generously plus
`max_tokens` (or the model's default when the request names none), in tokens, or priced with the price in
force when the request started. When the request ends its meter settles each reservation to the record's
own tokens or cost (`pricing.py`'s rule), so a budget and the ledger never disagree about a request.
A money budget counts costs in its own currency; a model priced in another currency is refused under it,
since its spend could not be counted; an unpriced model costs nothing.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Callable

from cbgate.errors import CloudBaseError, PermissionDenied, ServiceUnavailable, TokenQuotaExceeded
from cbgate.limits.base import DEFAULT_MAX_TOKENS
from cbgate.limits.budgets import BudgetCounter, Charge, Counter, CounterUnavailable, Over
from cbgate.pricing import MICROS, PriceTable, format_micros
from cbgate.store.budgets import BudgetRow
from cbgate.store.usage import UsageRecord
from cbgate.tokens import NON_TEXT_ALLOWANCE, generous_count, prompt_tokens

PERIODS = ("day", "month", "total")
TOKENS = "tokens"
MAX_AMOUNT_MICROS = 10 ** 15  # a billion currency units: sums stay exact in Redis's Lua numbers (2^53)
MAX_TOKENS = 2 ** 53 - 1

# CloudBase's API has no code for money: a spent budget is a quota used up, the code its clients already
# handle (HTTP 429), and the message says which budget it is.
BudgetExceeded = type("BudgetExceeded", (TokenQuotaExceeded,), {})


def period_bounds(period: str, now: float) -> tuple[float, float | None]:
    """The UTC period `now` falls in: [start, end); a total budget's has no end."""
    if period == "total":
        return 0.0, None
    day = datetime.fromtimestamp(now, timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day.timestamp(), (day + timedelta(days=1)).timestamp()
    first = day.replace(day=1)
    following = first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
    return first.timestamp(), following.timestamp()


def unit_of(budget: BudgetRow) -> str:
    return TOKENS if budget.kind == TOKENS else budget.currency


def counter_for(budget: BudgetRow, now: float) -> Counter:
    start, end = period_bounds(budget.period, now)
    unit = unit_of(budget)
    return Counter(f"{budget.id}:{unit}:{int(start)}", budget.env_id, budget.key_id, unit, start, end)


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_amount(micros: int) -> str:
    """Micro-units as money: at least two decimals, no trailing zeros past them ("12.50", "0.001234")."""
    whole, fraction = format_micros(micros).split(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


def parse_amount(value: object) -> int:
    """A money amount ("12.50", or a number) in micro-units: above 0, at most 6 decimals."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("amount must be a decimal amount of money, e.g. \"12.50\"")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"amount must be a decimal amount like 12.50, got {str(value)[:40]!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"amount must be above 0, got {str(value)[:40]!r}")
    micros = amount * MICROS
    if micros != micros.to_integral_value():
        raise ValueError(f"amount {str(value)[:40]} has more than 6 decimals; money is kept in millionths")
    if micros > MAX_AMOUNT_MICROS:
        raise ValueError(f"amount may be at most {MAX_AMOUNT_MICROS // MICROS}")
    return int(micros)


def show(budget: BudgetRow, amount: int) -> str | int:
    """An amount in the budget's unit as the API shows it: a decimal string of money, or whole tokens."""
    return amount if budget.kind == TOKENS else format_amount(amount)


def describe(budget: BudgetRow) -> str:
    """"the environment's budget of 12.50 CNY per month", "API key k-1's budget of 5000 tokens in total"."""
    whose = "the environment's" if budget.key_id is None else f"API key {budget.key_id}'s"
    amount = f"{budget.limit} tokens" if budget.kind == TOKENS else f"{format_amount(budget.limit)} {budget.currency}"
    when = "in total" if budget.period == "total" else f"per {budget.period} (UTC)"
    return f"{whose} budget of {amount} {when}"


def refusal(budget: BudgetRow, used: int, cost: int, now: float) -> CloudBaseError:
    """The 429 of a budget without room: which budget, what is used, and when it resets."""
    _, end = period_bounds(budget.period, now)
    unit = "tokens" if budget.kind == TOKENS else budget.currency
    state = (f"is spent ({show(budget, used)} {unit} spent or reserved)" if used >= budget.limit else
             f"has too little left for this request ({show(budget, used)} {unit} spent or reserved, and this "
             f"request may take up to {show(budget, cost)} {unit})")
    resets = f"it resets at {iso(end)}" if end is not None else "it never resets; an administrator may raise it"
    error = TokenQuotaExceeded if budget.kind == TOKENS else BudgetExceeded
    return error(f"{describe(budget)} {state}; {resets}", retry_after=None if end is None else max(1.0, end - now))


def spent_by(budget: BudgetRow, record: UsageRecord) -> int:
    """What a finished request spent of the budget, from its ledger record."""
    if budget.kind == TOKENS:
        return record.prompt_tokens + record.completion_tokens
    return record.cost_micros if record.currency == budget.currency else 0


def worst_case(budget: BudgetRow, prompt: int, max_out: int, price: PriceTable | None, model: str) -> int:
    if budget.kind == TOKENS:
        return prompt + max_out
    if price is None:
        return 0  # an unpriced model costs nothing (README, "Costs and budgets")
    if price.currency != budget.currency:
        raise PermissionDenied(f"model {model!r} is priced in {price.currency}, so {describe(budget)} cannot "
                               f"count its cost; price it in {budget.currency} to call it under this budget")
    return price.worst_case(prompt, max_out)


class BudgetGate:
    """Admission under every budget that applies to a request (its environment's and its key's), through
    one counter shared by the process (or every replica, through Redis). `clock` says what time it is:
    which period a request falls in (tests move it across a period's end)."""

    def __init__(self, counter: BudgetCounter, clock: Callable[[], float] = time.time):
        self.counter = counter
        self.clock = clock
        self._current: dict[BudgetRow, Counter] = {}  # each budget's counter for the period last seen

    def _counter(self, budget: BudgetRow, now: float) -> Counter:
        """The budget's counter for `now`'s period (the date arithmetic once a period, not once a request)."""
        found = self._current.get(budget)
        if found is not None and found.start <= now and (found.end is None or now < found.end):
            return found
        if len(self._current) > 10_000:  # rows of snapshots gone by
            self._current.clear()
        found = self._current[budget] = counter_for(budget, now)
        return found

    async def admit(self, budgets: tuple[BudgetRow, ...], req, price: PriceTable | None, default_max: int | None,
                    on_finish: Callable[[Callable[[UsageRecord], None]], None]) -> None:
        """Reserve the request's worst case under each budget, or raise its 429 (none charged). `on_finish`
        registers the settlement, run however the request ends."""
        if not budgets:
            return
        now = self.clock()
        prompt = prompt_tokens(req.messages, generous_count, NON_TEXT_ALLOWANCE)
        max_out = req.max_tokens or default_max or DEFAULT_MAX_TOKENS
        charges = tuple(Charge(self._counter(b, now), b.limit, worst_case(b, prompt, max_out, price, req.model))
                        for b in budgets)
        try:
            ticket = await self.counter.admit(charges)
        except Over as over:
            raise refusal(budgets[over.index], over.used, charges[over.index].cost, now) from None
        except CounterUnavailable as exc:
            raise ServiceUnavailable("the gateway cannot check this environment's budgets; try again shortly",
                                     retry_after=5) from exc
        on_finish(lambda record: ticket.finish(tuple(spent_by(b, record) for b in budgets)))

    async def live(self, budgets: list[BudgetRow]) -> dict[str, tuple[int, int]]:
        """Budget id -> (spent, reserved) in its current period, from the counters (those that exist)."""
        now = self.clock()
        counters = {b.id: counter_for(b, now) for b in budgets}
        found = await self.counter.peek(list(counters.values()))
        return {bid: found[c.key] for bid, c in counters.items() if c.key in found}
