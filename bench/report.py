"""Turns measured cells into the markdown report: figures per target, ratios, and the issue's targets."""
from __future__ import annotations

MODE_NAMES = {"json": "non-streaming", "sse": "streaming (14 events)"}
LITELLM_TIMES = 40  # issue 17: at least 40x LiteLLM's req/s (issue 3 asked 20x)
BASE_TIMES = 1.5  # issue 17: at least 1.5x the older commit (`base`) in the same run
ADDED_P50_MS = 0.3  # issue 17: added latency at p50, 1 client (issue 2 asked under 1 ms)


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def _index(cells) -> dict:
    """(mode, clients, target) -> the cell of the median round by req/s (the only one with one round)."""
    rounds: dict = {}
    for c in cells:
        rounds.setdefault((c.mode, c.clients, c.target), []).append(c)
    return {key: sorted(cs, key=lambda c: c.result["rps"])[(len(cs) - 1) // 2] for key, cs in rounds.items()}


def figures_table(cells) -> list[str]:
    lines = ["| mode | clients | target | req/s | p50 ms | p99 ms | events/reply | bad replies | load (1/5/15 min) |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for c in cells:
        r = c.result
        bad = r["bad"] + r["socket_errors"]
        events = f"{r['events'] / r['replies']:.1f}" if c.mode == "sse" and r["replies"] else "-"
        lines.append(f"| {MODE_NAMES[c.mode]} | {c.clients} | {c.target} | {r['rps']:.0f} | {_ms(r['p50_us'])} | "
                     f"{_ms(r['p99_us'])} | {events} | {bad} | {c.load} |")
    return lines


def ratios_table(cells) -> list[str]:
    """cbgate against the direct baseline (added ms) and against LiteLLM (how many times faster)."""
    at = _index(cells)
    lines = ["| mode | clients | cbgate added p50 ms | cbgate added p99 ms | cbgate/direct req/s "
             "| cbgate/LiteLLM req/s | LiteLLM/cbgate p50 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for mode, clients in dict.fromkeys((c.mode, c.clients) for c in cells):
        gw, direct, lite = (at.get((mode, clients, t)) for t in ("cbgate", "direct", "litellm"))
        if gw is None:
            continue
        g = gw.result
        cols = ["-"] * 5
        if direct:
            d = direct.result
            cols[0:3] = [_ms(g["p50_us"] - d["p50_us"]), _ms(g["p99_us"] - d["p99_us"]),
                         f"{g['rps'] / d['rps']:.2f}"]
        if lite:
            b = lite.result
            cols[3:5] = [f"{g['rps'] / b['rps']:.1f}x", f"{b['p50_us'] / max(g['p50_us'], 1):.1f}x"]
        lines.append(f"| {MODE_NAMES[mode]} | {clients} | " + " | ".join(cols) + " |")
    return lines


def base_table(cells) -> list[str]:
    """Today's head (cbgate) against the older commit (base), round by round and as the medians."""
    at = _index(cells)
    keys = [k for k in dict.fromkeys((c.mode, c.clients) for c in cells) if (*k, "base") in at]
    if not keys:
        return []
    lines = ["| mode | clients | head req/s | base req/s | head/base (median) | head/base per round "
             "| head p50 ms | base p50 ms | CPU µs/request, head | base | base/head CPU, per round |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for mode, clients in keys:
        head, base = at.get((mode, clients, "cbgate")), at[(mode, clients, "base")]
        if head is None:
            continue
        heads = [c.result["rps"] for c in cells if (c.mode, c.clients, c.target) == (mode, clients, "cbgate")]
        bases = [c.result["rps"] for c in cells if (c.mode, c.clients, c.target) == (mode, clients, "base")]
        rounds = ", ".join(f"{h / b:.2f}" for h, b in zip(heads, bases))
        cpu = [[c.result.get("cpu_us") for c in cells if (c.mode, c.clients, c.target) == (mode, clients, who)]
               for who in ("cbgate", "base")]
        cpu_rounds = ", ".join(f"{b / h:.2f}" for h, b in zip(*cpu) if h and b) or "-"
        medians = [sorted(x for x in xs if x)[(len([x for x in xs if x]) - 1) // 2] if any(xs) else None
                   for xs in cpu]
        cpu_cols = " | ".join(f"{m:.0f}" if m else "-" for m in medians)
        lines.append(f"| {MODE_NAMES[mode]} | {clients} | {head.result['rps']:.0f} | {base.result['rps']:.0f} | "
                     f"{head.result['rps'] / base.result['rps']:.2f}x | {rounds} | {_ms(head.result['p50_us'])} | "
                     f"{_ms(base.result['p50_us'])} | {cpu_cols} | {cpu_rounds} |")
    return lines


def target_checks(cells, rps_targets: dict[str, int]) -> list[str]:
    """The issue's targets, each with the figure that meets or misses it."""
    at = _index(cells)
    checks = []

    def check(ok: bool, text: str) -> None:
        checks.append(f"- [{'x' if ok else ' '}] {text}")

    for mode, floor in rps_targets.items():
        gw = at.get((mode, 32, "cbgate"))
        if gw:
            check(gw.result["rps"] >= floor, f"{MODE_NAMES[mode]}, 32 clients: {gw.result['rps']:.0f} req/s "
                                             f"(target at least {floor})")
        lite = at.get((mode, 32, "litellm"))
        if gw and lite:
            times = gw.result["rps"] / lite.result["rps"]
            check(times >= LITELLM_TIMES, f"{MODE_NAMES[mode]}, 32 clients: {times:.1f} times LiteLLM's req/s "
                                          f"(target {LITELLM_TIMES})")
        base = at.get((mode, 32, "base"))
        if gw and base:
            times = gw.result["rps"] / base.result["rps"]
            check(times >= BASE_TIMES, f"{MODE_NAMES[mode]}, 32 clients: {times:.2f} times the older commit's "
                                       f"req/s (target {BASE_TIMES})")
    for mode in rps_targets:
        gw, direct = at.get((mode, 1, "cbgate")), at.get((mode, 1, "direct"))
        if gw and direct:
            added = (gw.result["p50_us"] - direct.result["p50_us"]) / 1000
            check(added <= ADDED_P50_MS, f"{MODE_NAMES[mode]}, 1 client: {added:.2f} ms added at p50 "
                                         f"(target at most {ADDED_P50_MS} ms)")
    return checks


def render(cells, header: list[str], rps_targets: dict[str, int]) -> str:
    parts = header + ["", "### Figures", ""] + figures_table(cells)
    parts += ["", "### cbgate against the direct upstream and LiteLLM", ""] + ratios_table(cells)
    against_base = base_table(cells)
    if against_base:
        parts += ["", "### Today's head against the older commit (same run, same mock)", ""] + against_base
        parts += ["", "CPU µs/request: the serving process's user and kernel time over the cell (every thread), "
                      "divided by the requests wrk completed. base/head says how many requests one core serves "
                      "for head for each one it serves for base; it moves far less with the machine's load than "
                      "req/s, which also depends on what the other processes leave the gateway."]
    checks = target_checks(cells, rps_targets)
    if checks:
        parts += ["", "### Targets (issue 17)", ""] + checks
    return "\n".join(parts) + "\n"
