// Charts drawn as inline SVG: stacked bars (tokens per day per model) and lines (requests, errors per day).
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777"];
const W = 640, H = 240, PAD = { left: 56, right: 12, top: 12, bottom: 40 };

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

// Round Y-axis ticks: a step of 1, 2, 2.5 or 5 times a power of ten, and a top at the first tick at or
// above the largest value (664 -> 0, 200, 400, 600, 800; never 166, 332, 498).
export function niceTicks(maxValue, wanted = 4) {
  const max = Math.max(maxValue, 1);
  const rough = max / wanted;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = Math.max(1, [1, 2, 2.5, 5, 10].map((m) => m * power)
    .find((s) => s >= rough && Number.isInteger(s)));  // counts are whole: no 2.5 under 10
  const top = Math.ceil(max / step) * step;
  return Array.from({ length: Math.round(top / step) + 1 }, (_, i) => i * step);
}

function frame(test, label, maxValue, days) {
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, "data-test": test,
    class: "chart" });
  const plotH = H - PAD.top - PAD.bottom;
  const ticks = niceTicks(maxValue);
  const top = ticks[ticks.length - 1];
  const y = (v) => PAD.top + plotH - (plotH * v) / top;
  ticks.forEach((value) => {
    root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(value), y2: y(value), class: "gridline" }),
      svg("text", { x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end", class: "tick", "data-tick": value },
        value.toLocaleString()));
  });
  const step = (W - PAD.left - PAD.right) / Math.max(days.length, 1);
  const every = Math.ceil(days.length / 10);
  days.forEach((day, i) => {
    if (i % every === 0) {
      root.append(svg("text", { x: PAD.left + step * (i + 0.5), y: H - PAD.bottom + 16, "text-anchor": "middle",
        class: "tick" }, day.slice(5)));
    }
  });
  return { root, step, plotH, y };
}

function legend(names) {
  const box = document.createElement("div");
  box.className = "legend";
  names.forEach((name, i) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = COLORS[i % COLORS.length];
    item.append(swatch, name);
    box.append(item);
  });
  return box;
}

// points: [{day, model, total_tokens}]
export function stackedBars(points, label, test) {
  const days = [...new Set(points.map((p) => p.day))].sort();
  const models = [...new Set(points.filter((p) => p.total_tokens > 0).map((p) => p.model))].sort();
  const perDay = Object.fromEntries(days.map((d) => [d, 0]));
  points.forEach((p) => { perDay[p.day] += p.total_tokens; });
  const chart = frame(test, label, Math.max(...Object.values(perDay), 1), days);
  days.forEach((day, i) => {
    let base = 0;
    models.forEach((model, m) => {
      const value = points.filter((p) => p.day === day && p.model === model).reduce((s, p) => s + p.total_tokens, 0);
      if (!value) return;
      const top = chart.y(base + value), bottom = chart.y(base);
      const bar = svg("rect", { x: PAD.left + chart.step * i + chart.step * 0.15, y: top,
        width: chart.step * 0.7, height: Math.max(bottom - top, 1), fill: COLORS[m % COLORS.length],
        "data-model": model, "data-day": day },
        svg("title", {}, `${day} ${model}: ${value.toLocaleString()}`));
      chart.root.append(bar);
      base += value;
    });
  });
  return wrap(chart.root, legend(models));
}

// series: {name: {day: value}}, days sorted
export function lines(days, series, label, test) {
  const names = Object.keys(series);
  const max = Math.max(1, ...names.flatMap((n) => days.map((d) => series[n][d] || 0)));
  const chart = frame(test, label, max, days);
  names.forEach((name, s) => {
    const coords = days.map((d, i) => [PAD.left + chart.step * (i + 0.5), chart.y(series[name][d] || 0)]);
    chart.root.append(svg("polyline", { points: coords.map((c) => c.join(",")).join(" "), fill: "none",
      stroke: COLORS[s % COLORS.length], "stroke-width": 2, "data-series": name }));
    coords.forEach(([x, y], i) => chart.root.append(svg("circle", { cx: x, cy: y, r: 3,
      fill: COLORS[s % COLORS.length] }, svg("title", {}, `${days[i]} ${name}: ${series[name][days[i]] || 0}`))));
  });
  return wrap(chart.root, legend(names));
}

function wrap(chartSvg, legendBox) {
  const figure = document.createElement("figure");
  figure.append(chartSvg, legendBox);
  return figure;
}
