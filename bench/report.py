"""Turns measured cells into the markdown report: figures per target, ratios, and the issue's targets."""
from __future__ import annotations

MODE_NAMES = {"json": "non-streaming", "sse": "streaming (14 events)"}


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def _index(cells) -> dict:
    return {(c.mode, c.clients, c.target): c for c in cells}


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
            check(times >= 20, f"{MODE_NAMES[mode]}, 32 clients: {times:.1f} times LiteLLM's req/s (target 20)")
    for mode in rps_targets:
        gw, direct = at.get((mode, 1, "cbgate")), at.get((mode, 1, "direct"))
        if gw and direct:
            added = (gw.result["p50_us"] - direct.result["p50_us"]) / 1000
            check(added < 1, f"{MODE_NAMES[mode]}, 1 client: {added:.2f} ms added at p50 (target under 1 ms)")
    return checks


def render(cells, header: list[str], rps_targets: dict[str, int]) -> str:
    parts = header + ["", "### Figures", ""] + figures_table(cells)
    parts += ["", "### cbgate against the direct upstream and LiteLLM", ""] + ratios_table(cells)
    checks = target_checks(cells, rps_targets)
    if checks:
        parts += ["", "### Targets (issue 3; the 1-client line is issue 2's overhead benchmark)", ""] + checks
    return "\n".join(parts) + "\n"
