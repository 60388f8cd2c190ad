// The API keys page: the env's keys, the form that creates one (the plain key shown once), and a key's
// permissions (model allow-list, its own rpm, concurrency and token quota, MCP grants), edited through the
// admin API's one permissions call; what the API refuses is shown beside the editor, word for word.
import { api, envPath, field, h, table, when } from "./api.js";
import { t } from "./i18n.js";
import { attempt, notice, statusLine } from "./pages.js";

const LIMITS = ["rpm", "concurrency", "token_quota"];
const names = (text) => text.split(/[\s,]+/).filter(Boolean);

// "search: web_search, fetch" / "files: *" per line <-> {"search": ["web_search", "fetch"], "files": "*"}
function mcpText(grants) {
  return Object.entries(grants || {}).map(([svc, tools]) => `${svc}: ${tools === "*" ? "*" : tools.join(", ")}`).join("\n");
}

function mcpValue(text) {
  const grants = {};
  for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf(":");
    const svc = (at < 0 ? line : line.slice(0, at)).trim();
    const tools = at < 0 ? "" : line.slice(at + 1).trim();
    grants[svc] = tools === "*" ? "*" : names(tools);  // an empty list: the API says what is wrong with it
  }
  return grants;
}

export function permissionsSummary(k) {
  const parts = [];
  if (k.models) parts.push(t("nModels", { n: k.models.length }));
  LIMITS.forEach((name) => { if (k[name] != null) parts.push(`${t(`short_${name}`)} ${k[name].toLocaleString()}`); });
  if (k.mcp) parts.push(t("nMcp", { n: Object.keys(k.mcp).length }));
  return parts.join(" · ") || t("envDefaults");
}

// A "every / only these" choice with the list it switches on.
function scoped(test, all, only, value, text, hint, rows) {
  const mode = h("select", { "data-test": `${test}-mode` }, h("option", { value: "all", selected: value == null }, all),
    h("option", { value: "only", selected: value != null }, only));
  const list = h("textarea", { rows, class: "wide", "data-test": test, value: text, disabled: value == null });
  mode.addEventListener("change", () => { list.disabled = mode.value === "all"; });
  return { mode, list, box: h("div", { class: "row" }, mode, field("", list, hint)) };
}

function permissionsForm(ctx, k) {
  const status = statusLine("permissions-status");
  const models = scoped("perm-models", t("modelsEvery"), t("modelsOnly"), k.models, (k.models || []).join(", "),
    t("modelsHint"), 2);
  const mcp = scoped("perm-mcp", t("mcpDefault"), t("mcpOnly"), k.mcp, mcpText(k.mcp), t("mcpGrantsHint"), 3);
  const limits = Object.fromEntries(LIMITS.map((name) => [name, h("input", { type: "number", min: "1", step: "1",
    value: k[name] ?? "", placeholder: t("noneOwn"), "data-perm": name })]));
  const form = h("form", { class: "settings", "data-test": "permissions-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { models: models.mode.value === "all" ? null : names(models.list.value),
      mcp: mcp.mode.value === "all" ? null : mcpValue(mcp.list.value),
      ...Object.fromEntries(LIMITS.map((name) => [name, limits[name].value === "" ? null : Number(limits[name].value)])) };
    const saved = await attempt(status, () => api("PUT", envPath(ctx.env, `/keys/${encodeURIComponent(k.id)}/permissions`), body));
    if (!saved) return;
    await ctx.refresh();
    document.querySelector("[data-test=key-list-status]")?.replaceChildren(
      notice(t("permissionsSaved", { n: `${k.prefix}…` })));
  } }, h("h2", {}, t("permissionsOf", { n: `${k.prefix}… ${k.name || ""}`.trim() })),
  h("fieldset", {}, h("legend", {}, t("allowModels")), models.box),
  h("fieldset", { class: "row" }, h("legend", {}, t("keyLimits")),
    LIMITS.map((name) => field(t(`limit_${name}`), limits[name])), h("small", { class: "help" }, t("keyLimitsHint"))),
  h("fieldset", {}, h("legend", {}, t("mcpGrants")), mcp.box),
  h("div", { class: "row" }, h("button", { "data-test": "save-permissions" }, t("save")),
    h("button", { type: "button", class: "secondary", onclick: () => form.parentElement.replaceChildren() }, t("close"))));
  return [form, status];
}

function createForm(ctx, status) {
  const name = h("input", { "data-test": "key-name" });
  const kind = h("select", { "data-test": "key-kind" },
    h("option", { value: "server" }, t("server")), h("option", { value: "publishable" }, t("publishable")));
  const days = h("input", { type: "number", min: "1", "data-test": "key-days" });
  return h("form", { class: "row", onsubmit: async (ev) => {
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
}

export async function keysPage(ctx) {
  const { data } = await api("GET", envPath(ctx.env, "/keys"));
  const status = statusLine("key-status");
  const listStatus = statusLine("key-list-status");
  const editor = h("div", { "data-test": "key-permissions" });
  const rows = data.map((k) => [k.prefix + "…", k.name || "-", t(k.kind), when(k.created_at), when(k.last_used_at),
    when(k.expires_at), k.revoked_at ? "-" : h("span", { class: "row" },
      h("span", { "data-summary": k.prefix }, permissionsSummary(k)),
      h("button", { type: "button", class: "secondary", "data-test": `permissions-${k.prefix}`, onclick: () => {
        editor.replaceChildren(...permissionsForm(ctx, k));
        editor.scrollIntoView({ block: "nearest" });
      } }, t("edit"))),
    k.revoked_at ? when(k.revoked_at) : h("button", { class: "danger", "data-test": "revoke", onclick: async () => {
      if (!confirm(t("confirmRevoke"))) return;
      if (await attempt(listStatus, () => api("DELETE", envPath(ctx.env, `/keys/${k.id}`)))) ctx.refresh();
    } }, t("revoke"))]);
  return h("section", {}, h("h1", {}, `${t("keys")} · ${ctx.env}`), createForm(ctx, status), status, listStatus,
    table([t("prefix"), t("name"), t("kind"), t("created"), t("lastUsed"), t("expires"), t("permissions"), t("revoked")],
      rows, "key-table"), editor);
}
