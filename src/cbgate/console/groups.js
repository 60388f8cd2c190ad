// The model groups page: groups with their models and on/off switches, each group's settings (key,
// timeouts; a custom group's URL and models too) with a "test" button, and the form that adds a group.
import { api, envPath, field, h, table } from "./api.js";
import { t } from "./i18n.js";
import { attempt, notice, statusLine } from "./pages.js";

const TIMEOUTS = ["connect", "first_byte", "idle", "total"];

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

const modelList = (text) => text.split(/[\s,]+/).filter(Boolean);

function timeoutFields(g, prefix) {
  const inputs = Object.fromEntries(TIMEOUTS.map((name) => [name, h("input", { type: "number", min: "0.1",
    step: "any", value: g?.timeouts?.[name] ?? "", placeholder: "-", "data-test": `${prefix}-timeout-${name}` })]));
  const box = h("fieldset", { class: "row" }, h("legend", {}, t("timeouts")),
    TIMEOUTS.map((name) => field(t(`timeout_${name}`), inputs[name])));
  const value = () => {
    const set = TIMEOUTS.filter((name) => inputs[name].value !== "");
    return set.length ? Object.fromEntries(set.map((name) => [name, Number(inputs[name].value)])) : null;
  };
  return { box, value };
}

// The settings of a vendor or custom group, saved in one call; "test" asks the upstream with the saved key.
function settingsForm(ctx, g, base, status) {
  const custom = g.type === "custom";
  const url = custom ? h("input", { type: "url", required: true, value: g.base_url, "data-test": `edit-url-${g.name}` }) : null;
  const models = custom ? h("input", { required: true, value: g.models.map((m) => m.name).join(", "),
    "data-test": `edit-models-${g.name}` }) : null;
  const key = h("input", { type: "password", autocomplete: "off", placeholder: t(g.has_key ? "keySet" : "keyNotSet"),
    "data-test": `group-key-${g.name}` });
  const timeouts = timeoutFields(g, g.name);
  const testResult = h("span", { "data-test": `test-result-${g.name}` });
  const test = h("button", { type: "button", class: "secondary", "data-test": `test-${g.name}`, onclick: async () => {
    testResult.replaceChildren(t("testing"));
    const result = await attempt(status, () => api("POST", `${base}/test`));
    testResult.replaceChildren(!result ? "" : result.ok
      ? notice(t("testOk", { n: Math.round(result.latency_ms) }))
      : notice(`${t("testFailed")}: ${result.message}`, "error"));
    testResult.dataset.ok = result ? String(result.ok) : "";
  } }, t("test"));
  return h("form", { class: "settings", "data-test": `settings-${g.name}`, onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { timeouts: timeouts.value() };
    if (custom) Object.assign(body, { base_url: url.value.trim(), models: modelList(models.value) });
    if (key.value) body.api_key = key.value;
    if (await attempt(status, () => api("PUT", base, body))) ctx.refresh();
  } }, h("div", { class: "row" }, custom ? field(t("group_base_url"), url) : null,
    custom ? field(t("group_models"), models, t("group_models_hint")) : null,
    field(t("group_api_key"), key, g.has_key ? t("keyKeep") : null)),
  timeouts.box, h("div", { class: "row" }, h("button", { "data-test": `save-${g.name}` }, t("save")), test, testResult));
}

function groupSection(ctx, g) {
  const base = envPath(ctx.env, `/groups/${encodeURIComponent(g.name)}`);
  const status = statusLine(`group-status-${g.name}`);
  const head = h("h2", {}, `${g.name} `, h("small", {}, `${t(g.type === "custom" ? "custom" : "builtin")}`,
    g.base_url ? ` · ${g.base_url}` : ""));
  const section = h("div", { class: "group", "data-group": g.name }, head);
  if (g.name !== "cloudbase") {
    section.append(h("div", { class: "row" },
      toggle(g.enabled, g.name, { "data-group-switch": g.name },
        async (on) => !!(await attempt(status, () => api("PUT", base, { enabled: on })))),
      g.type === "custom" ? h("button", { type: "button", class: "danger", "data-test": `delete-${g.name}`,
        onclick: async () => {
          if (confirm(t("confirmDelete")) && await attempt(status, () => api("DELETE", base))) ctx.refresh();
        } }, t("delete")) : null),
    h("details", { open: g.type === "custom" || undefined }, h("summary", {}, t("settings")),
      settingsForm(ctx, g, base, status)));
  }
  section.append(status, table([t("model"), t("enabled")], g.models.map((m) => [m.name,
    toggle(m.enabled, m.name, { "data-model": m.name, "data-in-group": g.name },
      async (on) => !!(await attempt(status,
        () => api("PUT", `${base}/models/${encodeURIComponent(m.name)}`, { enabled: on }))))]), `models-${g.name}`));
  return section;
}

function newGroupForm(ctx) {
  const status = statusLine("new-group-status");
  const input = (name, attrs = {}) => h("input", { name, "data-test": `new-group-${name}`, ...attrs });
  const name = input("name", { required: true }), url = input("base_url", { type: "url", required: true,
    placeholder: t("group_base_url_hint") });
  const models = input("models", { required: true }), key = input("api_key", { type: "password", autocomplete: "off" });
  const protocol = h("select", { "data-test": "new-group-protocol" }, h("option", { value: "openai" }, "OpenAI"),
    h("option", { value: "anthropic" }, "Anthropic"));
  const check = h("input", { type: "checkbox", checked: true, "data-test": "new-group-check" });
  const timeouts = timeoutFields(null, "new-group");
  const checkHint = (err) => (err.code === "AI_MODEL_REQUEST_FAILED" && check.checked ? t("checkFailedHint") : null);
  const form = h("form", { class: "settings", "data-test": "new-group-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { name: name.value.trim(), base_url: url.value.trim(), protocol: protocol.value,
      models: modelList(models.value), api_key: key.value || null, check: check.checked, timeouts: timeouts.value() };
    if (await attempt(status, () => api("POST", envPath(ctx.env, "/groups"), body), checkHint)) ctx.refresh();
  } }, h("div", { class: "row" }, field(t("group_name"), name), field(t("group_protocol"), protocol),
    field(t("group_base_url"), url), field(t("group_models"), models, t("group_models_hint")),
    field(t("group_api_key"), key)), timeouts.box,
  h("div", { class: "row" }, h("label", { class: "switch" }, check, t("checkUpstream")),
    h("button", { "data-test": "create-group" }, t("createGroup"))));
  return [form, status];
}

export async function modelsPage(ctx) {
  const { data } = await api("GET", envPath(ctx.env, "/groups"));
  return h("section", {}, h("h1", {}, `${t("models")} · ${ctx.env}`),
    ...data.map((g) => groupSection(ctx, g)),
    h("h2", {}, t("createGroup")), h("p", { class: "help" }, t("createGroupHelp")), ...newGroupForm(ctx));
}
