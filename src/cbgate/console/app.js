// The console shell: sign-in, language switch, environment picker and a hash router over the pages.
import { api, h, session } from "./api.js";
import { currentLang, otherLang, setLang, t } from "./i18n.js";
import { agentsPage } from "./agents.js";
import { budgetsPage } from "./budgets.js";
import { modelsPage } from "./groups.js";
import { keysPage } from "./keys.js";
import { mcpPage } from "./mcp.js";
import { envsPage, limitsPage } from "./pages.js";
import { forgetPlaygroundKeys, playgroundPage } from "./playground.js";
import { pricesPage } from "./prices.js";
import { usagePage } from "./usage.js";

const PAGES = { envs: envsPage, keys: keysPage, models: modelsPage, mcp: mcpPage, limits: limitsPage,
  prices: pricesPage, budgets: budgetsPage, usage: usagePage, playground: playgroundPage, agents: agentsPage };
const main = document.getElementById("main");
let me = null;

function pageName() {
  const name = location.hash.replace(/^#\/?/, "");
  return name in PAGES ? name : "envs";
}

function translateStatic() {
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.getElementById("lang").textContent = otherLang() === "zh" ? "中文" : "English";
  document.title = `cbgate · ${t(pageName())}`;
}

function renderNav() {
  const nav = document.getElementById("nav");
  nav.replaceChildren(...(me ? Object.keys(PAGES).map((name) => h("a", { href: `#/${name}`, "data-page": name,
    class: name === pageName() ? "active" : "" }, t(name))) : []));
  const picker = document.getElementById("env-picker");
  picker.hidden = !me;
  document.getElementById("sign-out").hidden = !me;
  if (!me) return;
  const select = document.getElementById("env-select");
  select.replaceChildren(...me.envs.map((env) => h("option", { value: env, selected: env === session.env }, env)));
  select.disabled = me.kind !== "operator";
}

function signInForm(message) {
  const token = h("input", { type: "password", autocomplete: "off", required: true, "data-test": "token" });
  return h("section", { class: "signin" }, h("h1", {}, t("signIn")),
    h("form", { onsubmit: async (ev) => {
      ev.preventDefault();
      await signIn(token.value.trim());
    } }, h("label", {}, t("tokenLabel"), token), h("button", { "data-test": "sign-in" }, t("signIn"))),
    message ? h("p", { class: "notice error", role: "alert", "data-test": "notice-error" }, message) : null,
    h("p", { class: "help", "data-test": "token-where" }, t("signInWhere"), " ",
      h("code", {}, "cbgate admin token create"), ". ", t("signInWhereAfter")),
    h("p", { class: "help" }, t("signInHelp")));
}

async function signIn(token) {
  try {
    me = await api("GET", "/me", undefined, token);
  } catch (err) {
    me = null;
    session.token = null;
    main.replaceChildren(signInForm(`${err.code}: ${err.message}`));
    return;
  }
  session.token = token;
  // Keep the env chosen earlier in this tab; else the caller's own, else the one with traffic.
  if (!me.envs.includes(session.env)) session.env = me.env || me.busiest || me.envs[0] || "";
  await render();
}

async function render() {
  translateStatic();
  renderNav();
  if (!me) {
    main.replaceChildren(signInForm());
    return;
  }
  const name = pageName();
  const ctx = { me, env: session.env, refresh: render };
  try {
    const page = await PAGES[name](ctx);
    if (pageName() === name) main.replaceChildren(page);  // a newer navigation wins
  } catch (err) {
    if (err.status === 401) {  // revoked or expired while signed in
      me = null;
      session.token = null;
      main.replaceChildren(signInForm(`${err.code}: ${err.message}`));
      return;
    }
    main.replaceChildren(h("p", { class: "notice error", role: "alert", "data-test": "notice-error" },
      `${t("error")}: ${err.code} ${err.message}`));
  }
  main.dataset.page = name;
}

document.getElementById("lang").addEventListener("click", () => { setLang(otherLang()); render(); });
document.getElementById("sign-out").addEventListener("click", async () => {
  if (me?.kind === "operator") await forgetPlaygroundKeys();
  sessionStorage.clear();
  me = null;
  render();
});
document.getElementById("env-select").addEventListener("change", (ev) => { session.env = ev.target.value; render(); });
window.addEventListener("hashchange", render);

setLang(currentLang());
if (session.token) signIn(session.token);
else render();
