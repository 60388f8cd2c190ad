"""The usage ledger's rows: idempotent batch inserts and the queries the CLI and the admin API share.

Queries (all per environment, `since` and `until` in epoch seconds, `key_id` narrowing to one key's records):
- `usage_summary(store, env_id, since, by)`: totals, plus one row per model, key or day when `by` is given;
- `usage_series(store, env_id, since)`: tokens and requests per day and model (for charts);
- `recent_requests(store, env_id, limit)`: the newest ledger records;
- `busiest_env(store, env_ids, since)`: the env with the most requests (the console opens it first).
"""
from __future__ import annotations

import functools
import itertools
import operator
import time
from dataclasses import dataclass, fields

from sqlalchemy import case, func, select

from cbgate.pricing import PriceTable
from cbgate.store import schema
from cbgate.store.db import Store
from cbgate.text import MAX_SAFE_INTEGER

GROUP_COLUMNS = {"model": lambda t: t.c.model, "key": lambda t: t.c.key_id, "group": lambda t: t.c.group_name,
                 "day": lambda t: t.c.day, "surface": lambda t: t.c.surface, "agent": lambda t: t.c.agent_id}
MCP_SURFACE = "mcp"
AGENT_SURFACE = "agent"
GROUPINGS = (*GROUP_COLUMNS, MCP_SURFACE)


@dataclass(slots=True)
class UsageRecord:
    """One chat request as the ledger keeps it. `code` is None for success."""
    request_id: str
    env_id: str
    key_id: str | None
    group_name: str
    model: str
    deployment: str = ""
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False
    status: int = 200
    code: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    disconnected: bool = False
    created_at: float = 0.0
    content: str | None = None  # JSON {messages, answer}; only with CBGATE_LOG_CONTENT
    surface: str = "chat"  # the API it came in on: chat, messages, responses, images
    cache_creation_tokens: int = 0  # of prompt_tokens: written to an upstream prompt cache
    cache_read_tokens: int = 0  # of prompt_tokens: read from it
    images: int = 0  # images generated
    outcome: str | None = None  # an MCP tool call's end (ok, error, refused, timeout, ...); None elsewhere
    agent_id: str | None = None  # the agent a run was for (surface "agent"), or whose run called the tool ("mcp")
    cost_micros: int = 0  # in micro-units of `currency`, from `price` (cbgate.pricing's rule)
    currency: str = ""  # "": the model had no price when the request started
    price: dict | None = None  # PriceTable.as_dict() in force when it started: a replayed record is priced by it

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict:
        # Every field is a flat value: dataclasses.asdict's deep copy cost ~10 us a record (bench/results).
        return {name: getattr(self, name) for name in _FIELD_NAMES}

    @classmethod
    def from_dict(cls, data: dict) -> UsageRecord:
        return cls(**{name: data[name] for name in _FIELD_NAMES if name in data})

    def row(self) -> dict:
        """The row to insert, by column name (`values()` as a dict)."""
        return dict(zip(_INSERT_COLUMNS, self.values()))

    def values(self) -> tuple:
        """The row to insert, in `_INSERT_COLUMNS`' order. Whatever the edges let through, a record must never
        be refused by the database: one refused record holds up every later one (a NUL in any text, counts
        past BIGINT). Runs in the ledger drain's thread, which shares the GIL with the event loop: the fields
        are read and checked in C (attrgetter, join, min/max); the rare record that needs fixing takes the
        spelled-out way, and a priced one is costed there."""
        values = _COLUMN_VALUES(self) + (_day(int(self.created_at // 86400)),)
        counts = _COUNT_VALUES(values)
        try:
            clean = ("\x00" not in "\x01".join(filter(None, _TEXT_VALUES(values)))
                     and _INT_ONLY.issuperset(map(type, counts))
                     and min(counts) >= 0 and max(counts) <= MAX_SAFE_INTEGER)
        except TypeError:  # a text field that is not a string
            clean = False
        if clean and self.price is None:
            return values
        return self._fixed(list(values), clean)

    def _fixed(self, row: list, clean: bool) -> tuple:
        for i in () if clean else _TEXT_AT:
            value = row[i]
            if isinstance(value, str) and "\x00" in value:
                row[i] = value.replace("\x00", "\ufffd")
        for i in () if clean else _COUNT_AT:
            value = row[i]
            if type(value) is not int or not 0 <= value <= MAX_SAFE_INTEGER:
                row[i] = min(max(int(value or 0), 0), MAX_SAFE_INTEGER)
        if self.price is not None:  # priced here too, so a record replayed from a crashed spool gets its cost
            table = PriceTable.from_dict(self.price)
            row[_CURRENCY_AT] = table.currency
            row[_COST_AT] = min(table.cost(row[_PROMPT_AT], row[_COMPLETION_AT], row[_CACHE_READ_AT]),
                                MAX_SAFE_INTEGER)
        return tuple(row)


_FIELD_NAMES = tuple(f.name for f in fields(UsageRecord))
_COLUMN_NAMES = tuple(name for name in _FIELD_NAMES if name != "price")  # the price travels, the cost is stored
_INSERT_COLUMNS = (*_COLUMN_NAMES, "day")
_COUNT_FIELDS = ("prompt_tokens", "completion_tokens", "cache_creation_tokens", "cache_read_tokens", "images")
_TEXT_FIELDS = tuple(f.name for f in fields(UsageRecord) if f.name in _COLUMN_NAMES and "str" in str(f.type))
_TEXT_AT = tuple(_INSERT_COLUMNS.index(name) for name in _TEXT_FIELDS)
_COUNT_AT = tuple(_INSERT_COLUMNS.index(name) for name in _COUNT_FIELDS)
_PROMPT_AT, _COMPLETION_AT, _CACHE_READ_AT = (_INSERT_COLUMNS.index(name) for name in
                                              ("prompt_tokens", "completion_tokens", "cache_read_tokens"))
_CURRENCY_AT, _COST_AT = _INSERT_COLUMNS.index("currency"), _INSERT_COLUMNS.index("cost_micros")
_COLUMN_VALUES = operator.attrgetter(*_COLUMN_NAMES)
_TEXT_VALUES = operator.itemgetter(*_TEXT_AT)
_COUNT_VALUES = operator.itemgetter(*_COUNT_AT)
_INT_ONLY = frozenset({int})  # not bool: a count that is True is stored as 1, spelled out


@functools.lru_cache(maxsize=8)
def _day(days_since_epoch: int) -> str:
    """The UTC date of a day number: the drain names the same day for every record of a batch (a
    strftime each cost the drain thread ~2 us a record)."""
    return time.strftime("%Y-%m-%d", time.gmtime(days_since_epoch * 86400))


STATEMENT_ROWS = 256  # rows a SQLite INSERT takes at most: 256 x 26 parameters, under its cap of 32,766
FEW_ROWS = 32  # a smaller batch (under 64 requests/s: batches go every 0.5 s) goes in as executemany


def insert_records(store: Store, records: list[UsageRecord]) -> None:
    """Insert a batch; a request id already in the ledger is skipped, so replays never double-count.

    Plain SQL, the same INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL; SQLAlchemy's per-row
    parameter processing is bypassed (it cost ~25 us a record, bench/results/profile.md). The drain's thread
    shares the GIL with the event loop, and sqlite3 lets the GIL go around each statement's work; taking it
    back waits for the loop to pause, which a busy loop seldom does. So on SQLite many rows go in a statement:
    a statement a row drained ~250 records/s beside a busy thread, 256 a statement ~11,000
    (bench/results/drain.md). A last, shorter statement is rounded up to a power of two by repeating its last
    row (a conflict, skipped), so a connection prepares at most nine statement texts, once. A batch of fewer
    than FEW_ROWS, which only a gateway far from busy makes, goes in as executemany, which is cheaper for so
    few rows (for 17, 12 against 18 us a record of the drain's CPU). psycopg pipelines an executemany in a
    few round trips and parses one short statement: 4x faster there than long ones."""
    if not records:
        return
    rows = list({r.request_id: r.values() for r in records}.values())  # a statement must not name an id twice
    with store.engine.begin() as conn:
        if not store.is_sqlite or len(rows) < FEW_ROWS:
            conn.exec_driver_sql(_insert_sql(store.is_sqlite, 1), rows)
            return
        for at in range(0, len(rows), STATEMENT_ROWS):
            chunk = rows[at:at + STATEMENT_ROWS]
            size = 1 << (len(chunk) - 1).bit_length()
            chunk += [chunk[-1]] * (size - len(chunk))
            conn.exec_driver_sql(_insert_sql(True, size), tuple(itertools.chain.from_iterable(chunk)))


@functools.cache
def _insert_sql(is_sqlite: bool, rows: int) -> str:
    """Positional parameters (sqlite3 qmark, psycopg format): they bind without a name lookup per column,
    which sqlite3 does for named ones (a scan of the statement's names each)."""
    columns = _INSERT_COLUMNS
    assert set(columns) == {c.name for c in schema.usage_ledger.columns}, "the ledger's columns changed"
    mark = "?" if is_sqlite else "%s"
    names = ", ".join(f'"{c}"' for c in columns)
    row = f"({', '.join(mark for _ in columns)})"
    return (f"INSERT INTO {schema.usage_ledger.name} ({names}) VALUES {', '.join([row] * rows)} "
            "ON CONFLICT (request_id) DO NOTHING")


def _totals(t):
    prompt = func.coalesce(func.sum(t.c.prompt_tokens), 0)
    completion = func.coalesce(func.sum(t.c.completion_tokens), 0)
    errors = func.coalesce(func.sum(case((t.c.code.is_not(None), 1), else_=0)), 0)
    images = func.coalesce(func.sum(t.c.images), 0)
    cache_read = func.coalesce(func.sum(t.c.cache_read_tokens), 0)
    cache_creation = func.coalesce(func.sum(t.c.cache_creation_tokens), 0)
    return (func.count().label("requests"), errors.label("errors"), prompt.label("prompt_tokens"),
            completion.label("completion_tokens"), images.label("images"), cache_read.label("cache_read_tokens"),
            cache_creation.label("cache_creation_tokens"))


def _counts(row) -> dict:
    prompt, completion = int(row.prompt_tokens), int(row.completion_tokens)
    return {"requests": int(row.requests), "errors": int(row.errors), "prompt_tokens": prompt,
            "completion_tokens": completion, "total_tokens": prompt + completion, "images": int(row.images),
            "cache_read_tokens": int(row.cache_read_tokens), "cache_creation_tokens": int(row.cache_creation_tokens)}


def _where(query, env_id: str, since: float | None, until: float | None = None, key_id: str | None = None):
    """One environment's records from `since` (inclusive) to `until` (exclusive), of one key when given."""
    t = schema.usage_ledger
    query = query.where(t.c.env_id == env_id)
    if since is not None:
        query = query.where(t.c.created_at >= since)
    if until is not None:
        query = query.where(t.c.created_at < until)
    return query.where(t.c.key_id == key_id) if key_id is not None else query


def _with_cost(rows, key) -> dict:
    """Rows grouped by (key..., currency) merged into one per key, each with its cost per currency
    (`cost_micros`: {currency: micro-units}, exact) and the requests no price covered (`unpriced_requests`)."""
    merged: dict = {}
    for r in rows:
        k = key(r)
        counts = _counts(r)
        entry = merged.get(k)
        if entry is None:
            entry = merged[k] = {**{name: 0 for name in counts}, "cost_micros": {}, "unpriced_requests": 0}
        for name, value in counts.items():
            entry[name] += value
        if r.currency:
            entry["cost_micros"][r.currency] = entry["cost_micros"].get(r.currency, 0) + int(r.cost_micros)
        else:
            entry["unpriced_requests"] += int(r.requests)
    return merged


EMPTY_TOTAL = {"requests": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
               "images": 0, "cache_read_tokens": 0, "cache_creation_tokens": 0, "cost_micros": {},
               "unpriced_requests": 0}


def _cost_columns(t):
    return (t.c.currency, func.coalesce(func.sum(t.c.cost_micros), 0).label("cost_micros"))


def usage_summary(store: Store, env_id: str, since: float | None = None, by: str | None = None, *,
                  until: float | None = None, key_id: str | None = None) -> dict:
    """{"env", "since", "until", "key", "by", "requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens",
    "cost_micros": {currency: micro-units}, "unpriced_requests", "rows": [{<by>: value, ...the same}]}
    (rows empty when `by` is None). By agent, totals and rows count the model calls of agent runs only (a run
    that called the gateway's MCP tools has one per model round)."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"usage can be grouped by {', '.join(GROUPINGS)}, not {by!r}")
    t = schema.usage_ledger
    if by == "mcp":
        return _mcp_summary(store, env_id, since, until, key_id)

    def scoped(query):
        query = _where(query, env_id, since, until, key_id)
        return query.where(t.c.surface == AGENT_SURFACE) if by == "agent" else query

    with store.engine.connect() as conn:
        query = scoped(select(*_totals(t), *_cost_columns(t))).group_by(t.c.currency)
        total = _with_cost(conn.execute(query), lambda r: None).get(None) or {**EMPTY_TOTAL, "cost_micros": {}}
        rows = []
        if by is not None:
            column = GROUP_COLUMNS[by](t)
            query = scoped(select(column.label("value"), *_totals(t), *_cost_columns(t))).group_by(column, t.c.currency)
            merged = _with_cost(conn.execute(query.order_by(column)), lambda r: r.value)
            rows = [{by: value, **entry} for value, entry in merged.items()]
    return {"env": env_id, "since": since, "until": until, "key": key_id, "by": by, **total, "rows": rows}


def _mcp_summary(store: Store, env_id: str, since: float | None, until: float | None, key_id: str | None) -> dict:
    """MCP tool calls only: one row per service, tool and outcome (`errors`: calls that did not end ok)."""
    t = schema.usage_ledger
    columns = (t.c.group_name, t.c.model, t.c.outcome)
    mine = lambda query: _where(query, env_id, since, until, key_id).where(t.c.surface == MCP_SURFACE)  # noqa: E731
    with store.engine.connect() as conn:
        total = conn.execute(mine(select(*_totals(t)))).one()
        query = mine(select(*columns, *_totals(t))).group_by(*columns).order_by(*columns)
        rows = [{"service": r.group_name, "tool": r.model, "outcome": r.outcome, **_counts(r)}
                for r in conn.execute(query)]
    return {"env": env_id, "since": since, "until": until, "key": key_id, "by": "mcp", **_counts(total), "rows": rows}


def usage_series(store: Store, env_id: str, since: float | None = None, *, until: float | None = None,
                 key_id: str | None = None) -> list[dict]:
    """[{"day", "model", "requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens",
    "cost_micros", "unpriced_requests"}] by day and model."""
    t = schema.usage_ledger
    query = (_where(select(t.c.day, t.c.model, *_totals(t), *_cost_columns(t)), env_id, since, until, key_id)
             .group_by(t.c.day, t.c.model, t.c.currency))
    with store.engine.connect() as conn:
        merged = _with_cost(conn.execute(query.order_by(t.c.day, t.c.model)), lambda r: (r.day, r.model))
    return [{"day": day, "model": model, **entry} for (day, model), entry in merged.items()]


def busiest_env(store: Store, env_ids: list[str], since: float) -> str | None:
    """The env among `env_ids` with the most ledger rows since `since` (ties: the first by id)."""
    t = schema.usage_ledger
    count = func.count().label("requests")
    query = (select(t.c.env_id, count).where(t.c.env_id.in_(env_ids), t.c.created_at >= since)
             .group_by(t.c.env_id).order_by(count.desc(), t.c.env_id).limit(1))
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return row.env_id if row else None


def recent_requests(store: Store, env_id: str, limit: int = 50) -> list[UsageRecord]:
    t = schema.usage_ledger
    columns = [t.c[name] for name in _COLUMN_NAMES]
    query = select(*columns).where(t.c.env_id == env_id).order_by(t.c.created_at.desc()).limit(limit)
    with store.engine.connect() as conn:
        return [UsageRecord(**r._mapping) for r in conn.execute(query)]
