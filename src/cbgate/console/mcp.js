// The MCP page: the environment's MCP services (URL, transport, timeout, whether it has headers, on/off),
// the form that adds one (its headers go in, encrypted, and never come back), and its tool calls by outcome.
import { api, envPath, field, h, table } from "./api.js";
import { t } from "./i18n.js";
import { attempt, statusLine } from "./pages.js";

function headerLines(text) {
  const found = {};
  for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf(":");
    if (at > 0) found[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    else found[line] = "";  // the API says what is wrong with it
  }
  return found;
}

function serviceRow(ctx, s, status) {
  const base = envPath(ctx.env, `/mcp/${encodeURIComponent(s.name)}`);
  const onOff = h("input", { type: "checkbox", role: "switch", checked: s.enabled, "aria-label": s.name,
    "data-mcp-switch": s.name, onchange: async (ev) => {
      if (!await attempt(status, () => api("PUT", base, { enabled: ev.target.checked }))) ev.target.checked = !ev.target.checked;
    } });
  const remove = h("button", { type: "button", class: "danger", "data-test": `delete-mcp-${s.name}`, onclick: async () => {
    if (confirm(t("confirmDeleteMcp")) && await attempt(status, () => api("DELETE", base))) ctx.refresh();
  } }, t("delete"));
  return [h("code", {}, s.name), s.url, s.transport, String(s.timeout), t(s.has_headers ? "mcpHeadersSet" : "mcpNoHeaders"),
    h("label", { class: "switch" }, onOff), h("code", {}, `/v1/cloudrun/${s.name}/messages`), remove];
}

function newServiceForm(ctx) {
  const status = statusLine("new-mcp-status");
  const name = h("input", { required: true, "data-test": "new-mcp-name", placeholder: "search" });
  const url = h("input", { type: "url", required: true, "data-test": "new-mcp-url", placeholder: "https://mcp.example.com/mcp" });
  const transport = h("select", { "data-test": "new-mcp-transport" }, h("option", { value: "streamable-http" }, "Streamable HTTP"),
    h("option", { value: "sse" }, "SSE"));
  const timeout = h("input", { type: "number", min: "0.1", step: "any", placeholder: "60", "data-test": "new-mcp-timeout" });
  const headers = h("textarea", { rows: 2, "data-test": "new-mcp-headers", placeholder: "Authorization: Bearer …" });
  const form = h("form", { class: "settings", "data-test": "new-mcp-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { name: name.value.trim(), url: url.value.trim(), transport: transport.value,
      timeout: timeout.value ? Number(timeout.value) : null, headers: headerLines(headers.value) };
    if (await attempt(status, () => api("POST", envPath(ctx.env, "/mcp"), body))) ctx.refresh();
  } }, h("div", { class: "row" }, field(t("mcpName"), name), field(t("mcpUrl"), url), field(t("mcpTransport"), transport),
    field(t("mcpTimeout"), timeout)), field(t("mcpHeaders"), headers, t("mcpHeadersHint")),
  h("div", { class: "row" }, h("button", { "data-test": "create-mcp" }, t("createMcp"))));
  return [form, status];
}

export async function mcpPage(ctx) {
  const [{ data }, usage] = await Promise.all([api("GET", envPath(ctx.env, "/mcp")),
    api("GET", envPath(ctx.env, "/usage?by=mcp&days=30"))]);
  const status = statusLine("mcp-status");
  const services = data.length
    ? table([t("name"), t("mcpUrl"), t("mcpTransport"), t("mcpTimeout"), t("mcpHeaders"), t("enabled"), t("mcpPath"), ""],
      data.map((s) => serviceRow(ctx, s, status)), "mcp-services")
    : h("p", { class: "help" }, t("mcpNone"));
  const calls = usage.rows.length
    ? table([t("mcpService"), t("mcpTool"), t("mcpOutcome"), t("requests")],
      usage.rows.map((r) => [r.service, r.tool, r.outcome, String(r.requests)]), "mcp-calls")
    : h("p", { class: "help" }, t("noData"));
  return h("section", {}, h("h1", {}, `${t("mcp")} · ${ctx.env}`), h("p", { class: "help" }, t("mcpHelp")), status, services,
    h("h2", {}, t("createMcp")), ...newServiceForm(ctx), h("h2", {}, t("mcpCalls")), calls);
}
