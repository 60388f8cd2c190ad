"""The route table: paths as data, and the one place that decides 404 and 405.

A row is a path pattern and the handler per method (`*`: any method, for a plane that keeps its own
table below a prefix): `{name}` binds one segment, a final `{name*}` binds the rest (zero or more
segments, as a tuple). Every plane is rows of one table: the model
surfaces under `/v1/ai/{group}/...`, and a surface under another prefix (`/v1/aibot/...`,
`/v1/cloudrun/{service}/...`) is one more row. Of the rows whose pattern fits a path, the most literal
ones win (so `responses/compact` is not the response `compact`), and a row that fits it whole wins over one
whose `{name*}` is left empty; a method none of them takes is a 405
whose `Allow` lists the methods they do take (RFC 9110). A path no row fits is a 404; below the prefix of a
row browsers call it carries the CORS headers too, so that a page reads the 404 instead of a CORS failure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from cbgate.errors import CloudBaseError, InvalidPath, MethodNotAllowed
from cbgate.http.exchange import Exchange
from cbgate.http.paths import path_hint

Handler = Callable[[Exchange, dict], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    pattern: str
    methods: Mapping[str, Handler]
    # the envelope refusals on this path wear (a 405 included): a surface's own, such as Messages'
    error_body: Callable[[CloudBaseError, str], dict] | None = None
    cors: bool = False  # browsers may call it: preflights answered, replies carry the origin headers
    bound: Mapping[str, str] = field(default_factory=dict)  # params a literal path stands for ({"group": "ark"})
    segments: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self):
        object.__setattr__(self, "segments", tuple(self.pattern.strip("/").split("/")))

    def match(self, parts: tuple[str, ...]) -> dict[str, Any] | None:
        params: dict[str, Any] = dict(self.bound)
        for i, segment in enumerate(self.segments):
            if segment.startswith("{") and segment.endswith("*}"):
                params[segment[1:-2]] = parts[i:]
                return params
            if i >= len(parts):
                return None
            if segment.startswith("{"):
                if not parts[i]:
                    return None
                params[segment[1:-1]] = parts[i]
            elif segment != parts[i]:
                return None
        return params if len(parts) == len(self.segments) else None

    @property
    def literals(self) -> int:
        return sum(1 for s in self.segments if not s.startswith("{"))

    def rank(self, params: dict) -> tuple[int, bool]:
        """How closely the row fits a path it matched: by its literal segments, then a row that fits the path
        whole before one whose final `{name*}` bound nothing (`/bots/{agent}` before `/bots/{agent}/{rest*}`)."""
        last = self.segments[-1]
        return self.literals, not (last.endswith("*}") and not params[last[1:-2]])

    @property
    def prefix(self) -> tuple[str, ...]:
        """The literal segments before the first parameter (`/v1/ai/{group}/...`: v1, ai)."""
        for i, segment in enumerate(self.segments):
            if segment.startswith("{"):
                return self.segments[:i]
        return self.segments


# Paths whose matches are remembered. Trying every row cost ~40 us a request (bench/results/route-table.md),
# a remembered one ~0.3 us. Bounded, and forgotten whole when full, so paths a client invents (404s, ids)
# cost at most what matching did before, never memory.
MATCH_CACHE_SIZE = 2048
MATCH_CACHE_PATH_LIMIT = 256


class RouteTable:
    def __init__(self, rows: list[Route], cors=None):
        self.rows = rows
        self.cors = cors  # http/cors.py's policy, for rows marked `cors`
        self._known: dict[str, tuple[tuple[Route, dict], ...]] = {}

    def add(self, *rows: Route) -> None:
        self.rows.extend(rows)
        self._known.clear()

    def _matches(self, path: str) -> list[tuple[Route, dict]]:
        """The best rows for the path, each with its own copy of the params (a handler may change them)."""
        known = self._known.get(path)
        if known is None:
            known = tuple(self._match(path))
            if len(path) <= MATCH_CACHE_PATH_LIMIT:
                if len(self._known) >= MATCH_CACHE_SIZE:
                    self._known.clear()
                self._known[path] = known
        return [(route, dict(params)) for route, params in known]

    def _match(self, path: str) -> list[tuple[Route, dict]]:
        parts = tuple(path.strip("/").split("/"))
        found = [(route, params) for route in self.rows if (params := route.match(parts)) is not None]
        if not found:
            return []
        best = max(route.rank(params) for route, params in found)
        return [(route, params) for route, params in found if route.rank(params) == best]

    def _below_browser_rows(self, path: str) -> bool:
        """An unknown path under a prefix browsers call (`/v1/ai/...`): its 404 is for the page to read."""
        parts = tuple(path.strip("/").split("/"))
        return any(route.cors and parts[:len(route.prefix)] == route.prefix for route in self.rows)

    async def dispatch(self, ex: Exchange) -> None:
        path = ex.scope["path"]
        matches = self._matches(path)
        for route, _ in matches:
            if route.error_body is not None:
                ex.error_body = route.error_body
        browser = any(route.cors for route, _ in matches) if matches else self._below_browser_rows(path)
        if self.cors is not None and browser and await self.cors.handle(ex):
            return  # a browser's preflight, answered
        if not matches:
            raise InvalidPath(f"no such path: {path}{path_hint(path)}")
        method = ex.scope["method"]
        for route, params in matches:
            handler = route.methods.get(method) or route.methods.get("*")
            if handler is not None:
                return await handler(ex, params)
        raise MethodNotAllowed(method, sorted({m for route, _ in matches for m in route.methods}))
