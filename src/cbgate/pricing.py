"""Model prices in CloudBase's shape, and the one rule that turns a record's tokens into money.

A price table is uniform (one tier) or tiered by prompt tokens (CloudBase's "0-16k", "16k-128k"), each tier
with input, output and cache-read prices per 1,000 tokens, in one currency. Money is integers: a price is
held in micro-units per 1,000 tokens, a cost in micro-units, so sums never drift.

The cost rule (`PriceTable.cost`), in one place:
- the tier is the first whose upper bound is at least the prompt's tokens (a prompt exactly at a tier's
  bound is in that tier, one token more is in the next); a prompt past every bound is in the last tier;
- uncached prompt tokens (cache writes included) at the input price, cache-read tokens at the cache price
  (the input price when the tier has none), completion tokens at the output price;
- the exact sum, rounded half up to a whole micro-unit once per record.
Imports nothing of ours: the store prices replayed records with it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

MICROS = 1_000_000
PER_TOKENS = 1000  # prices are per this many tokens
MAX_PRICE_MICROS = 10 ** 12  # a million currency units per 1,000 tokens: anything above is a typo
MAX_TIER_TOKENS = 10 ** 9
CURRENCY = re.compile(r"\A[A-Z]{3}\Z")
DEFAULT_CURRENCY = "CNY"  # CloudBase bills in yuan
_TIER = re.compile(r"\A\s*([0-9]+(?:\.[0-9]+)?[kKmM]?)\s*-\s*([0-9]+(?:\.[0-9]+)?[kKmM]?)?\s*\Z")
_SCALE = {"": 1, "k": 1000, "m": 1_000_000}


class PriceError(ValueError):
    """A price, tier or currency that cannot be used; the message says which and why."""


def price_micros(value: object, what: str) -> int:
    """A price per 1,000 tokens (a number or a decimal string, at most 6 decimals) in micro-units."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PriceError(f"{what} must be a number of currency units per 1,000 tokens, e.g. 0.0008")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise PriceError(f"{what} must be a number like 0.0008, got {str(value)[:40]!r}") from None
    if not amount.is_finite() or amount < 0:
        raise PriceError(f"{what} must be a number of at least 0, got {str(value)[:40]!r}")
    micros = amount * MICROS
    if micros != micros.to_integral_value():
        raise PriceError(f"{what} has more than 6 decimals ({value}); money is kept in millionths")
    if micros > MAX_PRICE_MICROS:
        raise PriceError(f"{what} is more than {MAX_PRICE_MICROS // MICROS} per 1,000 tokens")
    return int(micros)


def format_micros(micros: int) -> str:
    """Micro-units as a decimal amount: 1234 -> "0.001234" (exact; no float on the way)."""
    sign, micros = ("-", -micros) if micros < 0 else ("", micros)
    return f"{sign}{micros // MICROS}.{micros % MICROS:06d}"


def _tokens(text: str) -> int:
    text = text.strip()
    unit = text[-1].lower() if text[-1].isalpha() else ""
    return int(Decimal(text[:-1] if unit else text) * _SCALE[unit])


def parse_tier(text: str) -> tuple[int, int | None]:
    """`FROM-TO` in prompt tokens (`0-16k`, `16k-128k`, `128k-` for no upper bound) -> (from, to)."""
    match = _TIER.match(text) if isinstance(text, str) else None
    if match is None:
        raise PriceError(f"tier {str(text)[:40]!r} must be FROM-TO in prompt tokens, e.g. 0-16k or 16k-128k "
                         "(128k- for no upper bound)")
    start, end = _tokens(match.group(1)), _tokens(match.group(2)) if match.group(2) else None
    if end is not None and not start < end <= MAX_TIER_TOKENS:
        raise PriceError(f"tier {text!r}: its upper bound must be above its lower bound")
    return start, end


def tier_name(start: int, end: int | None) -> str:
    def short(n: int) -> str:
        return f"{n // 1000}k" if n and n % 1000 == 0 else str(n)
    return f"{short(start)}-{short(end) if end is not None else ''}"


@dataclass(frozen=True, slots=True)
class Tier:
    start: int  # prompt tokens: the tier holds prompts above this ...
    end: int | None  # ... up to and including this (None: no upper bound)
    input: int  # micro-units per 1,000 tokens
    output: int
    cache: int | None = None  # cache-read price; None: cache reads cost the input price

    @property
    def name(self) -> str:
        return tier_name(self.start, self.end)

    def view(self) -> dict:
        return {"tier": self.name, "from": self.start, "to": self.end, "input": format_micros(self.input),
                "output": format_micros(self.output),
                "cache": format_micros(self.cache) if self.cache is not None else None}


@dataclass(frozen=True, slots=True)
class PriceTable:
    currency: str
    tiers: tuple[Tier, ...]  # sorted by start, not overlapping; one open tier from 0 for a uniform price

    @property
    def kind(self) -> str:
        return "Tiered" if len(self.tiers) > 1 or self.tiers[0].end is not None else "Uniform"

    def tier_for(self, prompt_tokens: int) -> Tier:
        for tier in self.tiers:
            if tier.end is None or prompt_tokens <= tier.end:
                return tier
        return self.tiers[-1]

    def cost(self, prompt_tokens: int, completion_tokens: int, cache_read_tokens: int = 0) -> int:
        """The cost in micro-units of one record's tokens (the module's rule)."""
        tier = self.tier_for(prompt_tokens)
        cached = min(max(cache_read_tokens, 0), prompt_tokens)
        cache_price = tier.input if tier.cache is None else tier.cache
        scaled = ((prompt_tokens - cached) * tier.input + cached * cache_price
                  + completion_tokens * tier.output)  # micro-units times PER_TOKENS
        return (scaled + PER_TOKENS // 2) // PER_TOKENS

    def worst_case(self, prompt_tokens: int, max_completion: int) -> int:
        """The most a request of this prompt may cost: nothing cached, every completion token produced."""
        return self.cost(prompt_tokens, max_completion)

    def as_dict(self) -> dict:
        return {"currency": self.currency, "tiers": [[t.start, t.end, t.input, t.output, t.cache]
                                                     for t in self.tiers]}

    @classmethod
    def from_dict(cls, data: dict) -> PriceTable:
        """The compact form `as_dict` writes (spool entries and the store's rows)."""
        return cls(data["currency"], tuple(Tier(*t) for t in data["tiers"]))

    def view(self) -> dict:
        return {"currency": self.currency, "type": self.kind, "tiers": [t.view() for t in self.tiers]}


def check_currency(currency: object) -> str:
    if not isinstance(currency, str) or not CURRENCY.match(currency):
        raise PriceError(f"currency must be a three-letter code like CNY or USD, got {str(currency)[:20]!r}")
    return currency


def with_tier(table: PriceTable | None, tier: Tier, currency: str) -> PriceTable:
    """`table` with `tier` added (replacing a tier of the same range). A uniform tier replaces the whole
    table; a tier that overlaps another, or a second currency, is refused."""
    if table is not None and table.currency != currency:
        raise PriceError(f"this model is priced in {table.currency}; delete its price first to use {currency}")
    if tier.start == 0 and tier.end is None or table is None:
        tiers: list[Tier] = []
    else:
        tiers = [t for t in table.tiers if (t.start, t.end) != (tier.start, tier.end)]
    for other in tiers:
        if other.start == 0 and other.end is None:
            raise PriceError("this model has a uniform price; delete it before adding tiers")
        other_end = other.end if other.end is not None else float("inf")
        tier_end = tier.end if tier.end is not None else float("inf")
        if tier.start < other_end and other.start < tier_end:
            raise PriceError(f"tier {tier.name} overlaps tier {other.name}")
    return PriceTable(currency, tuple(sorted(tiers + [tier], key=lambda t: t.start)))


def parse_table(raw: object, where: str) -> PriceTable:
    """A price table as the config file writes it: {currency, input, output, cache} for a uniform price,
    or {currency, tiers = [{tier = "0-16k", input, output, cache}, ...]}."""
    if not isinstance(raw, dict):
        raise PriceError(f"{where} must be a table")
    unknown = set(raw) - {"currency", "input", "output", "cache", "tiers"}
    if unknown:
        raise PriceError(f"{where}: unknown key `{sorted(unknown)[0]}` (known: cache, currency, input, output, tiers)")
    currency = check_currency(raw.get("currency", DEFAULT_CURRENCY))
    entries = raw.get("tiers")
    if entries is None:
        entries = [{"tier": "0-", **{k: v for k, v in raw.items() if k in ("input", "output", "cache")}}]
    elif not isinstance(entries, list) or not entries or any(k in raw for k in ("input", "output", "cache")):
        raise PriceError(f"{where}: give either input/output/cache or a non-empty `tiers` array, not both")
    table = None
    for i, entry in enumerate(entries):
        spot = f"{where}.tiers[{i}]" if "tiers" in raw else where
        if not isinstance(entry, dict) or set(entry) - {"tier", "input", "output", "cache"}:
            raise PriceError(f"{spot} must be a table of tier, input, output and cache")
        if "input" not in entry or "output" not in entry:
            raise PriceError(f"{spot} needs `input` and `output` prices per 1,000 tokens")
        start, end = parse_tier(entry.get("tier", "0-"))
        cache = price_micros(entry["cache"], f"{spot}.cache") if entry.get("cache") is not None else None
        tier = Tier(start, end, price_micros(entry["input"], f"{spot}.input"),
                    price_micros(entry["output"], f"{spot}.output"), cache)
        table = with_tier(table, tier, currency)
    return table
