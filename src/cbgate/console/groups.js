// The model groups page: groups with their models and on/off switches, vendor keys, custom groups.
import { api, envPath, h, table } from "./api.js";
import { t } from "./i18n.js";
import { attempt, notice } from "./pages.js";

function toggle(checked, label, testAttrs, onchange) {
  const state = h("span", {}, t(checked ? "on" : "off"));
  const input = h("input", { type: "checkbox", role: "switch", checked, "aria-label": label, ...testAttrs,
    onchange: async (ev) => {
      const wanted = ev.target.checked;
      if (await onchange(wanted)) state.textContent = t(wanted ? "on" : "off");
      else ev.target.checked = !wanted;
    } });
  return h("label", { class: "switch" }, input, state);
}

function groupSection(ctx, g, status) {
  const base = envPath(ctx.env, `/groups/${encodeURIComponent(g.name)}`);
  const head = h("h2", {}, `${g.name} `, h("small", {}, `${t(g.type === "custom" ? "custom" : "builtin")}`,
    g.base_url ? ` · ${g.base_url}` : ""));
  const section = h("div", { class: "group", "data-group": g.name }, head);
  if (g.name !== "cloudbase") {
    const key = h("input", { type: "password", autocomplete: "off", placeholder: t(g.has_key ? "keySet" : "keyNotSet"),
      "data-test": `group-key-${g.name}` });
    section.append(h("div", { class: "row" },
      toggle(g.enabled, g.name, { "data-group-switch": g.name },
        async (on) => !!(await attempt(status, () => api("PUT", base, { enabled: on })))),
      h("form", { class: "row", onsubmit: async (ev) => {
        ev.preventDefault();
        if (await attempt(status, () => api("PUT", base, { api_key: key.value }))) ctx.refresh();
      } }, key, h("button", {}, t("setKey"))),
      g.type === "custom" ? h("button", { type: "button", class: "danger", "data-test": `delete-${g.name}`,
        onclick: async () => {
          if (confirm(t("confirmDelete")) && await attempt(status, () => api("DELETE", base))) ctx.refresh();
        } }, t("delete")) : null));
  }
  section.append(table([t("model"), t("enabled")], g.models.map((m) => [m.name,
    toggle(m.enabled, m.name, { "data-model": m.name, "data-in-group": g.name },
      async (on) => !!(await attempt(status,
        () => api("PUT", `${base}/models/${encodeURIComponent(m.name)}`, { enabled: on }))))]), `models-${g.name}`));
  return section;
}

function newGroupForm(ctx, status) {
  const field = (name, attrs = {}) => h("input", { name, placeholder: t(`group_${name}`), "data-test": `new-group-${name}`,
    ...attrs });
  const name = field("name"), url = field("base_url", { type: "url" }), models = field("models");
  const key = field("api_key", { type: "password", autocomplete: "off" });
  const protocol = h("select", { "data-test": "new-group-protocol" }, h("option", { value: "openai" }, "OpenAI"),
    h("option", { value: "anthropic" }, "Anthropic"));
  const check = h("input", { type: "checkbox", checked: true, "data-test": "new-group-check" });
  return h("form", { class: "row", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { name: name.value.trim(), base_url: url.value.trim(), protocol: protocol.value,
      models: models.value.split(/[\s,]+/).filter(Boolean), api_key: key.value || null, check: check.checked };
    if (await attempt(status, () => api("POST", envPath(ctx.env, "/groups"), body))) ctx.refresh();
  } }, name, url, models, key, protocol, h("label", {}, check, t("checkUpstream")),
  h("button", { "data-test": "create-group" }, t("createGroup")));
}

export async function modelsPage(ctx) {
  const { data } = await api("GET", envPath(ctx.env, "/groups"));
  const status = h("div");
  return h("section", {}, h("h1", {}, `${t("models")} · ${ctx.env}`), status,
    ...data.map((g) => groupSection(ctx, g, status)),
    h("h2", {}, t("createGroup")), h("p", { class: "help" }, t("createGroupHelp")), newGroupForm(ctx, status));
}
