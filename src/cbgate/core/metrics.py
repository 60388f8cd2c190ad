"""Request metrics kept in memory (a few dict updates per request) and rendered as Prometheus text.

Labels are env, group, model and code only, and model/group only once the route resolved, so no
client-chosen string (and never a key) becomes a label.
"""
from __future__ import annotations

from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ADMISSION_CODES = frozenset({"EXCEED_CONCURRENT_REQUEST_LIMIT", "EXCEED_RATELIMIT", "EXCEED_TOKEN_QUOTA_LIMIT"})
ROUTE_LABELS = ("env", "group", "model")


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.series: dict[tuple, list] = {}  # labels -> [bucket counts..., sum, count]

    def observe(self, labels: tuple, value: float) -> None:
        row = self.series.get(labels)
        if row is None:
            row = self.series[labels] = [0] * len(self.buckets) + [0.0, 0]
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                row[i] += 1
                break
        row[-2] += value
        row[-1] += 1

    def render(self, name: str, names: tuple[str, ...], out: list[str]) -> None:
        for labels, row in sorted(self.series.items()):
            base = _labels(names, labels)
            cumulative = 0
            for bound, count in zip(self.buckets, row):
                cumulative += count
                out.append(f'{name}_bucket{{{base},le="{bound}"}} {cumulative}')
            out.append(f'{name}_bucket{{{base},le="+Inf"}} {row[-1]}')
            out.append(f"{name}_sum{{{base}}} {row[-2]:.6f}")
            out.append(f"{name}_count{{{base}}} {row[-1]}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: tuple) -> str:
    return ",".join(f'{n}="{_escape(str(v))}"' for n, v in zip(names, values))


class Metrics:
    def __init__(self):
        self.requests: dict[tuple, int] = defaultdict(int)  # (env, group, model, code)
        self.errors: dict[tuple, int] = defaultdict(int)
        self.refusals: dict[tuple, int] = defaultdict(int)
        self.prompt_tokens: dict[tuple, int] = defaultdict(int)  # (env, group, model)
        self.completion_tokens: dict[tuple, int] = defaultdict(int)
        self.in_flight: dict[tuple, int] = defaultdict(int)  # (env, group)
        self.admissions: dict[tuple, int] = defaultdict(int)  # (env,) -> requests that passed admission
        self.mcp_calls: dict[tuple, int] = defaultdict(int)  # (env, service, tool, outcome) -> MCP tool calls
        self.agent_runs: dict[tuple, int] = defaultdict(int)  # (env, agent, outcome) -> agent runs that ended
        self.latency = Histogram(LATENCY_BUCKETS)
        self.ttft = Histogram(TTFT_BUCKETS)

    def started(self, env: str, group: str) -> None:
        self.in_flight[(env, group)] += 1

    def finished(self, env: str, group: str, model: str, code: str, prompt: int, completion: int,
                 latency_s: float, ttft_s: float | None) -> None:
        """One chat request ended; `code` is "OK", "CLIENT_CLOSED" or its CloudBase error code."""
        self.in_flight[(env, group)] -= 1
        route = (env, group, model)
        self.requests[route + (code,)] += 1
        if code not in ("OK", "CLIENT_CLOSED"):
            self.errors[route + (code,)] += 1
            if code in ADMISSION_CODES:
                self.refusals[(env, code)] += 1
        if prompt:
            self.prompt_tokens[route] += prompt
        if completion:
            self.completion_tokens[route] += completion
        self.latency.observe(route, latency_s)
        if ttft_s is not None:
            self.ttft.observe(route, ttft_s)

    def admitted(self, env: str) -> None:
        """A request passed admission (it holds its slot and reservation until it ends)."""
        self.admissions[(env,)] += 1

    def mcp_call(self, env: str, service: str, tool: str, outcome: str) -> None:
        """One MCP tool call ended (ok, tool_error, error, refused, limited, timeout, failed, disconnected)."""
        self.mcp_calls[(env, service, tool, outcome)] += 1
    def agent_run(self, env: str, agent: str, outcome: str) -> None:
        """An agent run ended; `outcome` is "OK", "CLIENT_CLOSED" or its CloudBase error code."""
        self.agent_runs[(env, agent, outcome)] += 1

    def rejected(self, code: str) -> None:
        """An error before a request was known to belong to an env (bad key, bad body, bad path)."""
        self.requests[("", "", "", code)] += 1
        self.errors[("", "", "", code)] += 1

    COUNTERS = ("requests", "errors", "refusals", "admissions", "prompt_tokens", "completion_tokens", "agent_runs",
                "mcp_calls")

    def snapshot(self) -> dict:
        """Everything counted so far as plain lists (JSON-ready), for the other workers to add up."""
        shot = {name: [[*k, v] for k, v in getattr(self, name).items()] for name in self.COUNTERS}
        shot["in_flight"] = [[*k, v] for k, v in self.in_flight.items()]
        shot["latency"] = [[list(k), row] for k, row in self.latency.series.items()]
        shot["ttft"] = [[list(k), row] for k, row in self.ttft.series.items()]
        return shot

    def absorb(self, shot: dict, gauges: bool = True) -> None:
        """Add another worker's snapshot to these counts; `gauges=False` for a worker that is gone."""
        for name in self.COUNTERS + (("in_flight",) if gauges else ()):
            counts = getattr(self, name)
            for *key, value in shot.get(name, ()):
                counts[tuple(key)] += value
        for name in ("latency", "ttft"):
            hist = getattr(self, name)
            for key, row in shot.get(name, ()):
                mine = hist.series.setdefault(tuple(key), [0] * len(hist.buckets) + [0.0, 0])
                for i, value in enumerate(row):
                    mine[i] += value

    def render(self, snapshot_revision: int | None = None) -> bytes:
        out: list[str] = []
        coded = ROUTE_LABELS + ("code",)
        self._counter(out, "cbgate_requests_total", "Chat requests by outcome.", coded, self.requests)
        self._counter(out, "cbgate_errors_total", "Requests answered with an error, by CloudBase code.", coded,
                      self.errors)
        self._counter(out, "cbgate_admission_refusals_total", "Requests refused by admission (EXCEED_*).",
                      ("env", "code"), self.refusals)
        self._counter(out, "cbgate_admitted_requests_total", "Chat requests that passed admission.", ("env",),
                      self.admissions)
        self._counter(out, "cbgate_prompt_tokens_total", "Prompt tokens billed.", ROUTE_LABELS, self.prompt_tokens)
        self._counter(out, "cbgate_completion_tokens_total", "Completion tokens billed.", ROUTE_LABELS,
                      self.completion_tokens)
        self._counter(out, "cbgate_mcp_tool_calls_total", "MCP tool calls by service, tool and outcome.",
                      ("env", "service", "tool", "outcome"), self.mcp_calls)
        self._counter(out, "cbgate_agent_runs_total", "Agent runs by agent and outcome.", ("env", "agent", "outcome"),
                      self.agent_runs)
        out += ["# HELP cbgate_in_flight_requests Chat requests being served now.",
                "# TYPE cbgate_in_flight_requests gauge"]
        out += [f"cbgate_in_flight_requests{{{_labels(('env', 'group'), k)}}} {v}"
                for k, v in sorted(self.in_flight.items())]
        if snapshot_revision is not None:
            name = "cbgate_tenant_snapshot_revision"
            out += [f"# HELP {name} The store revision of the env-level state this process serves.",
                    f"# TYPE {name} gauge", f"{name} {snapshot_revision}"]
        for name, help_text, hist in (
                ("cbgate_request_duration_seconds", "Time from admission to the last byte.", self.latency),
                ("cbgate_time_to_first_token_seconds", "Time from admission to the first token.", self.ttft)):
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
            hist.render(name, ROUTE_LABELS, out)
        return ("\n".join(out) + "\n").encode()

    @staticmethod
    def _counter(out: list[str], name: str, help_text: str, names: tuple[str, ...], values: dict) -> None:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        out += [f"{name}{{{_labels(names, k)}}} {v}" for k, v in sorted(values.items())]


ENGINE_GAUGES = (
    ("cbgate_engine_up", "1 while the embedded engine's process is serving, 0 while it restarts.", "up"),
    ("cbgate_engine_queue_depth", "Requests waiting for a slot of the embedded engine.", "queue_depth"),
    ("cbgate_engine_batch_size", "Sequences the embedded engine is decoding together now.", "batch_size"),
    ("cbgate_engine_slots", "Sequences the embedded engine can decode together.", "slots"),
    ("cbgate_engine_tokens_per_second", "Tokens the embedded engine generated per second, last 10 s.",
     "tokens_per_second"),
)
ENGINE_COUNTERS = (
    ("cbgate_engine_generated_tokens_total", "Tokens the embedded engine generated.", "generated_tokens"),
    ("cbgate_engine_restarts_total", "Restarts of the embedded engine's process after it died.", "restarts"),
)


def render_engines(engines: list) -> bytes:
    """The embedded engines' figures (objects with the fields named above), labelled by deployment."""
    out: list[str] = []
    for kind, rows in (("gauge", ENGINE_GAUGES), ("counter", ENGINE_COUNTERS)):
        for name, help_text, field in rows:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            out += [f'{name}{{engine="{_escape(e.name)}"}} {float(getattr(e, field)):g}' for e in engines]
    return ("\n".join(out) + "\n").encode() if engines else b""
