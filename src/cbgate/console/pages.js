// The console's pages. Each is an async function (ctx) -> element; every action is one admin API call.
// Each form has its own status line right below it, so an error shows beside the form that caused it.
import { api, envPath, field, h, table, when } from "./api.js";
import { lines, stackedBars } from "./charts.js";
import { t } from "./i18n.js";

export function notice(text, kind = "ok") {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status", "data-test": `notice-${kind}` },
    text);
}

// Run an action; on failure show the CloudBase code and message in `where` (beside the form) and bring
// it into view.
export async function attempt(where, action, hint) {
  try {
    const result = await action();
    where.replaceChildren();
    return result;
  } catch (err) {
    where.replaceChildren(notice(`${t("error")}: ${err.code} ${err.message}`, "error"),
      hint && hint(err) ? h("p", { class: "help", "data-test": "error-hint" }, hint(err)) : null);
    where.scrollIntoView({ block: "nearest" });
    return undefined;
  }
}

export const statusLine = (test) => h("div", { class: "status", "aria-live": "polite", "data-test": test });

export async function envsPage(ctx) {
  const { data } = await api("GET", "/envs");
  const page = h("section", {}, h("h1", {}, t("envs")),
    table([t("id"), t("created")], data.map((e) => [e.id, when(e.created_at)]), "env-table"));
  if (ctx.me.kind === "operator") {
    const status = statusLine("env-status");
    const id = h("input", { "data-test": "new-env-id" });
    page.append(h("form", { class: "row", onsubmit: async (ev) => {
      ev.preventDefault();
      if (await attempt(status, () => api("POST", "/envs", { id: id.value.trim() || null }))) ctx.refresh();
    } }, field(t("newEnvId"), id), h("button", { "data-test": "create-env" }, t("createEnv"))), status);
  }
  const env = await api("GET", envPath(ctx.env));
  const status = statusLine("origins-status");
  const origins = h("textarea", { rows: 3, "data-test": "origins", value: env.origins.join("\n") });
  page.append(h("h2", {}, `${t("origins")} · ${ctx.env}`),
    h("form", { onsubmit: async (ev) => {
      ev.preventDefault();
      const list = origins.value.split(/[\s,]+/).filter(Boolean);
      const saved = await attempt(status, () => api("PUT", envPath(ctx.env, "/origins"), { origins: list }));
      if (saved) { origins.value = saved.origins.join("\n"); status.replaceChildren(notice(t("saved"))); }
    } }, field(t("origins"), origins, t("originsHelp")), h("button", { "data-test": "save-origins" }, t("save"))),
    status);
  return page;
}

export async function keysPage(ctx) {
  const { data } = await api("GET", envPath(ctx.env, "/keys"));
  const status = statusLine("key-status");
  const listStatus = statusLine("key-list-status");
  const rows = data.map((k) => [k.prefix + "…", k.name || "-", t(k.kind), when(k.created_at), when(k.last_used_at),
    when(k.expires_at), k.revoked_at ? when(k.revoked_at) : h("button", { class: "danger", "data-test": "revoke",
      onclick: async () => {
        if (!confirm(t("confirmRevoke"))) return;
        if (await attempt(listStatus, () => api("DELETE", envPath(ctx.env, `/keys/${k.id}`)))) ctx.refresh();
      } }, t("revoke"))]);
  const name = h("input", { "data-test": "key-name" });
  const kind = h("select", { "data-test": "key-kind" },
    h("option", { value: "server" }, t("server")), h("option", { value: "publishable" }, t("publishable")));
  const days = h("input", { type: "number", min: "1", "data-test": "key-days" });
  const form = h("form", { class: "row", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { name: name.value, kind: kind.value, expires_days: days.value ? Number(days.value) : null };
    const made = await attempt(status, () => api("POST", envPath(ctx.env, "/keys"), body));
    if (!made) return;
    await ctx.refresh();  // the new row in the list; the plain key only in the box below, this once
    const box = h("code", { "data-test": "new-key" }, made.key);
    document.querySelector("[data-test=key-status]").replaceChildren(h("div", { class: "once" },
      h("p", {}, t("keyOnce")), box, h("button", { type: "button", onclick: async (ev2) => {
        await navigator.clipboard?.writeText(made.key).catch(() => {});
        ev2.target.textContent = t("copied");
      } }, t("copy"))));
  } }, field(t("name"), name), field(t("kind"), kind), field(t("expiresDays"), days),
  h("button", { "data-test": "create-key" }, t("createKey")));
  return h("section", {}, h("h1", {}, `${t("keys")} · ${ctx.env}`), form, status, listStatus,
    table([t("prefix"), t("name"), t("kind"), t("created"), t("lastUsed"), t("expires"), t("revoked")], rows,
      "key-table"));
}

export async function limitsPage(ctx) {
  const status = statusLine("limits-status");
  let limits;
  try {
    limits = await api("GET", envPath(ctx.env, "/limits"));
  } catch (err) {
    if (err.code !== "INVALID_PATH") throw err;
    return h("section", {}, h("h1", {}, t("limits")), notice(t("noLimits"), "info"));
  }
  // One number field per limit; empty means no limit. Only an operator may change them.
  const operator = ctx.me.kind === "operator";
  const fields = Object.entries(limits).filter(([, v]) => v === null || typeof v === "number");
  const inputs = fields.map(([name, value]) => h("input", { type: "number", min: "1", name, value: value ?? "",
    placeholder: t("noLimit"), disabled: !operator, "data-limit": name }));
  return h("section", {}, h("h1", {}, `${t("limits")} · ${ctx.env}`),
    h("p", { class: "help" }, t(operator ? "limitsHelp" : "limitsOperatorOnly")),
    h("form", { class: "grid", onsubmit: async (ev) => {
      ev.preventDefault();
      const body = Object.fromEntries(inputs.map((i) => [i.name, i.value === "" ? null : Number(i.value)]));
      if (await attempt(status, () => api("PUT", envPath(ctx.env, "/limits"), body))) {
        status.replaceChildren(notice(t("saved")));
      }
    } }, fields.map(([name], i) => field(t(`limit_${name}`), inputs[i])),
    operator ? h("button", { "data-test": "save-limits" }, t("save")) : null), status);
}

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

export async function usagePage(ctx) {
  const days = Number(sessionStorage.getItem("cbgate.usageDays") || 30);
  const q = `?days=${days}`;
  const [total, byModel, byKey, series, recent] = await Promise.all([
    api("GET", envPath(ctx.env, `/usage${q}`)), api("GET", envPath(ctx.env, `/usage${q}&by=model`)),
    api("GET", envPath(ctx.env, `/usage${q}&by=key`)), api("GET", envPath(ctx.env, `/usage/series${q}`)),
    api("GET", envPath(ctx.env, "/requests?limit=20"))]);
  const picker = h("select", { "data-test": "usage-days", onchange: (ev) => {
    sessionStorage.setItem("cbgate.usageDays", ev.target.value);
    ctx.refresh();
  } }, [7, 30, 90].map((d) => h("option", { value: d, selected: d === days }, t("lastDays", { n: d }))));
  const head = [t("requests"), t("errors"), t("promptTokens"), t("completionTokens"), t("totalTokens"), t("cost")];
  const page = h("section", {}, h("h1", {}, `${t("usage")} · ${ctx.env}`), field(t("period"), picker),
    h("div", { class: "cards" }, head.map((label, i) => h("div", { class: "card" }, h("span", {}, label),
      h("strong", { "data-test": `total-${i}` }, countsRow("", total).slice(1)[i].toLocaleString())))));
  if (!series.data.length) {
    page.append(notice(t("noData"), "info"));
    return page;
  }
  const dayList = [...new Set(series.data.map((p) => p.day))].sort();
  const perDay = (name) => Object.fromEntries(dayList.map((d) => [d,
    series.data.filter((p) => p.day === d).reduce((s, p) => s + p[name], 0)]));
  page.append(
    h("h2", {}, t("tokensPerDay")), stackedBars(series.data, t("tokensPerDay"), "chart-tokens"),
    h("h2", {}, t("requestsOverTime")),
    lines(dayList, { [t("requests")]: perDay("requests"), [t("errors")]: perDay("errors") },
      t("requestsOverTime"), "chart-requests"),
    h("h2", {}, t("byModel")), table([t("model"), ...head], byModel.rows.map((r) => countsRow(r.model, r)), "by-model"),
    h("h2", {}, t("byKey")), table([t("key"), ...head], byKey.rows.map((r) => countsRow(r.key, r)), "by-key"),
    h("h2", {}, t("recent")),
    table([t("time"), t("model"), t("status"), t("code"), t("totalTokens"), t("latency")],
      recent.data.map((r) => [when(r.created_at), r.model, r.status, r.code || "-",
        r.prompt_tokens + r.completion_tokens, Math.round(r.latency_ms)]), "recent"));
  return page;
}
