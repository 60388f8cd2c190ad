// The usage page: tokens and cost of the whole environment or of one key, over the last days, a calendar
// month (UTC, the ledger's days) or a range of dates, with charts, tables by model and by key, and the newest
// requests. "What did key X cost this month, by model" is the key picker, "this month" and the model table.
import { api, envPath, field, h, table, when } from "./api.js";
import { lines, stackedBars } from "./charts.js";
import { t } from "./i18n.js";
import { notice } from "./pages.js";

const DAY = 86400;
const stored = (name, fallback) => sessionStorage.getItem(`cbgate.usage.${name}`) || fallback;
const store = (name, value) => sessionStorage.setItem(`cbgate.usage.${name}`, value);

// Cost arrives as integer millionths per currency; shown exactly (no float arithmetic on money).
function money(micros) {
  return `${Math.floor(micros / 1e6)}.${String(micros % 1e6).padStart(6, "0")}`;
}

function costText(c) {
  const shown = Object.entries(c.cost_micros || {}).sort().map(([cur, m]) => `${cur} ${money(m)}`);
  return shown.join(", ") || (c.unpriced_requests ? t("unpriced") : "-");
}

function countsRow(label, c) {
  return [label ?? "-", c.requests, c.errors, c.prompt_tokens, c.completion_tokens, c.total_tokens, costText(c)];
}

const monthStart = (offset) => {
  const now = new Date();
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + offset, 1) / 1000;
};
const dayOf = (text) => (text ? Date.parse(`${text}T00:00:00Z`) / 1000 : null);

// The chosen period as the API's query: days=N (the server's clock), or since/until in epoch seconds.
function periodQuery(period) {
  if (period === "month") return `since=${monthStart(0)}`;
  if (period === "lastMonth") return `since=${monthStart(-1)}&until=${monthStart(0)}`;
  if (period === "range") {
    const since = dayOf(stored("from", "")), to = dayOf(stored("to", ""));
    return [since !== null ? `since=${since}` : "", to !== null ? `until=${to + DAY}` : ""].filter(Boolean).join("&");
  }
  return `days=${Number(period) || 30}`;
}

function filters(ctx, keys, period, keyId) {
  const change = (name) => (ev) => { store(name, ev.target.value); ctx.refresh(); };
  const periodPicker = h("select", { "data-test": "usage-days", onchange: change("period") },
    ["7", "30", "90"].map((d) => h("option", { value: d, selected: d === period }, t("lastDays", { n: d }))),
    ["month", "lastMonth", "range"].map((p) => h("option", { value: p, selected: p === period }, t(`period_${p}`))));
  const keyPicker = h("select", { "data-test": "usage-key", onchange: change("key") },
    h("option", { value: "" }, t("allKeys")),
    keys.map((k) => h("option", { value: k.id, selected: k.id === keyId }, keyLabel(k))));
  const dates = Object.fromEntries(["from", "to"].map((name) => [name,
    h("input", { type: "date", value: stored(name, ""), "data-test": `usage-${name}` })]));
  const range = period !== "range" ? [] : [field(t("range_from"), dates.from), field(t("range_to"), dates.to),
    h("button", { type: "button", "data-test": "usage-range", onclick: () => {
      store("from", dates.from.value);
      store("to", dates.to.value);
      ctx.refresh();
    } }, t("show"))];
  return h("div", { class: "row" }, field(t("period"), periodPicker), ...range, field(t("key"), keyPicker),
    h("small", { class: "help" }, t("usageUtc")));
}

const keyLabel = (k) => `${k.prefix}…${k.name ? ` ${k.name}` : ""}${k.revoked_at ? ` (${t("revoked")})` : ""}`;

export async function usagePage(ctx) {
  const period = stored("period", "30");
  const { data: keys } = await api("GET", envPath(ctx.env, "/keys"));
  const keyId = keys.some((k) => k.id === stored("key", "")) ? stored("key", "") : "";
  const q = `?${periodQuery(period)}${keyId ? `&key=${encodeURIComponent(keyId)}` : ""}`;
  const [total, byModel, byKey, series, recent] = await Promise.all([
    api("GET", envPath(ctx.env, `/usage${q}`)), api("GET", envPath(ctx.env, `/usage${q}&by=model`)),
    api("GET", envPath(ctx.env, `/usage${q}&by=key`)), api("GET", envPath(ctx.env, `/usage/series${q}`)),
    api("GET", envPath(ctx.env, "/requests?limit=20"))]);
  const names = Object.fromEntries(keys.map((k) => [k.id, keyLabel(k)]));
  const head = [t("requests"), t("errors"), t("promptTokens"), t("completionTokens"), t("totalTokens"), t("cost")];
  const page = h("section", {}, h("h1", {}, `${t("usage")} · ${ctx.env}`), filters(ctx, keys, period, keyId),
    h("div", { class: "cards" }, head.map((label, i) => h("div", { class: "card" }, h("span", {}, label),
      h("strong", { "data-test": `total-${i}` }, countsRow("", total).slice(1)[i].toLocaleString())))));
  if (!series.data.length) {
    page.append(notice(t(keyId || period !== "30" ? "noDataPeriod" : "noData"), "info"));
    return page;
  }
  const dayList = [...new Set(series.data.map((p) => p.day))].sort();
  const perDay = (name) => Object.fromEntries(dayList.map((d) => [d,
    series.data.filter((p) => p.day === d).reduce((s, p) => s + p[name], 0)]));
  page.append(
    h("h2", {}, t("byModel")), table([t("model"), ...head], byModel.rows.map((r) => countsRow(r.model, r)), "by-model"),
    h("h2", {}, t("byKey")),
    table([t("key"), ...head], byKey.rows.map((r) => countsRow(names[r.key] ?? r.key, r)), "by-key"),
    h("h2", {}, t("tokensPerDay")), stackedBars(series.data, t("tokensPerDay"), "chart-tokens"),
    h("h2", {}, t("requestsOverTime")),
    lines(dayList, { [t("requests")]: perDay("requests"), [t("errors")]: perDay("errors") },
      t("requestsOverTime"), "chart-requests"),
    h("h2", {}, t("recent"), keyId ? h("small", {}, ` · ${t("allKeys")}`) : null),
    table([t("time"), t("key"), t("model"), t("status"), t("code"), t("totalTokens"), t("cost"), t("latency")],
      recent.data.map((r) => [when(r.created_at), names[r.key_id] ?? r.key_id ?? "-", r.model, r.status, r.code || "-",
        r.prompt_tokens + r.completion_tokens, r.currency ? `${r.currency} ${money(r.cost_micros)}` : "-",
        Math.round(r.latency_ms)]), "recent"));
  return page;
}
