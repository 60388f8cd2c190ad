// The console's pages. Each is an async function (ctx) -> element; every action is one admin API call.
// Each form has its own status line right below it, so an error shows beside the form that caused it.
import { api, envPath, field, h, table, when } from "./api.js";
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
    const help = hint && hint(err);  // replaceChildren would show a null as the text "null"
    where.replaceChildren(notice(`${t("error")}: ${err.code} ${err.message}`, "error"),
      ...(help ? [h("p", { class: "help", "data-test": "error-hint" }, help)] : []));
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
