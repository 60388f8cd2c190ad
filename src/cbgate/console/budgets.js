// The budgets page: the environment's budgets (whole environment or one key; money or tokens; per day, month
// or in total) with what the current period spent against the limit as a bar, what requests in flight have
// reserved, and when it resets; for an operator, the form that sets one and a delete per budget.
import { api, envPath, field, h } from "./api.js";
import { t } from "./i18n.js";
import { attempt, notice, statusLine } from "./pages.js";

const PERIODS = ["month", "day", "total"];

// Amounts come as decimal strings ("12.50") for money, whole numbers for tokens; the bar only needs a ratio.
function amountText(b, value) {
  return b.kind === "tokens" ? `${Number(value).toLocaleString()} ${t("tokensUnit")}` : `${value} ${b.currency}`;
}

function spendBar(b) {
  const limit = Number(b.limit), spent = Number(b.spent);
  const meter = h("meter", { min: 0, max: limit, value: Math.min(spent, limit), low: limit * 0.5, high: limit * 0.8,
    optimum: 0, "aria-label": t("spent") });
  const share = limit > 0 ? Math.round((100 * spent) / limit) : 0;
  return h("div", { class: "spend" }, meter,
    h("span", { "data-test": "budget-spent" }, `${amountText(b, b.spent)} / ${amountText(b, b.limit)} (${share}%)`));
}

// "2027-01-01T00:00:00Z" -> "2027-01-01 00:00 UTC" (periods start on whole minutes)
const resetText = (iso) => (iso ? iso.replace("T", " ").replace(/:\d\d(\.\d+)?(Z|\+00:00)$/, " UTC") : t("never"));

function budgetRow(ctx, b, keyNames, operator, status) {
  const remove = operator ? h("button", { type: "button", class: "danger", "data-test": "delete-budget",
    onclick: async () => {
      const path = envPath(ctx.env, `/budgets/${encodeURIComponent(b.id)}`);
      if (confirm(t("confirmDeleteBudget")) && await attempt(status, () => api("DELETE", path))) ctx.refresh();
    } }, t("delete")) : "";
  return h("tr", { "data-budget": b.id },
    h("td", {}, b.key_id ? keyNames[b.key_id] ?? b.key_id : t("wholeEnv")), h("td", {}, t(`budget_${b.period}`)),
    h("td", {}, t(b.kind === "tokens" ? "tokensKind" : "moneyKind")), h("td", {}, spendBar(b)),
    h("td", {}, Number(b.reserved) ? amountText(b, b.reserved) : "-"), h("td", {}, resetText(b.resets_at)),
    h("td", {}, remove));
}

function budgetForm(ctx, keys) {
  const status = statusLine("budget-status");
  const scope = h("select", { "data-test": "budget-key" }, h("option", { value: "" }, t("wholeEnv")),
    keys.filter((k) => !k.revoked_at).map((k) => h("option", { value: k.id }, `${k.prefix}…${k.name ? ` ${k.name}` : ""}`)));
  const period = h("select", { "data-test": "budget-period" },
    PERIODS.map((p) => h("option", { value: p }, t(`budget_${p}`))));
  const kind = h("select", { "data-test": "budget-kind" }, h("option", { value: "money" }, t("moneyKind")),
    h("option", { value: "tokens" }, t("tokensKind")));
  const amount = h("input", { required: true, inputmode: "decimal", placeholder: "12.50", "data-test": "budget-amount" });
  const currency = h("input", { placeholder: "CNY", size: 4, "data-test": "budget-currency" });
  const currencyField = field(t("currency"), currency);
  kind.addEventListener("change", () => {
    currencyField.hidden = kind.value === "tokens";
    amount.placeholder = kind.value === "tokens" ? "100000" : "12.50";
  });
  const form = h("form", { class: "settings", "data-test": "budget-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { key_id: scope.value || null, period: period.value };
    if (kind.value === "tokens") {
      const text = amount.value.trim();
      body.tokens = /^\d+$/.test(text) ? Number(text) : text;  // anything else: the API says what it must be
    } else {
      body.amount = amount.value.trim();
      if (currency.value.trim()) body.currency = currency.value.trim();
    }
    if (await attempt(status, () => api("PUT", envPath(ctx.env, "/budgets"), body))) ctx.refresh();
  } }, h("div", { class: "row" }, field(t("budgetScope"), scope), field(t("budgetPeriod"), period),
    field(t("budgetKind"), kind), field(t("budgetLimit"), amount), currencyField),
  h("p", { class: "help" }, t("budgetSetHelp")),
  h("div", { class: "row" }, h("button", { "data-test": "set-budget" }, t("setBudget"))));
  return [h("h2", {}, t("setBudget")), form, status];
}

export async function budgetsPage(ctx) {
  const [{ data }, { data: keys }] = await Promise.all([api("GET", envPath(ctx.env, "/budgets")),
    api("GET", envPath(ctx.env, "/keys"))]);
  const keyNames = Object.fromEntries(keys.map((k) => [k.id, `${k.prefix}…${k.name ? ` ${k.name}` : ""}`]));
  const operator = ctx.me.kind === "operator";
  const status = statusLine("budget-list-status");
  const list = data.length
    ? h("table", { "data-test": "budgets" }, h("thead", {}, h("tr", {},
      ["budgetScope", "budgetPeriod", "budgetKind", "spentOfLimit", "reserved", "resetsAt", ""].map((c) => h("th", {}, c ? t(c) : "")))),
    h("tbody", {}, data.map((b) => budgetRow(ctx, b, keyNames, operator, status))))
    : h("p", { class: "help" }, t("noBudgets"));
  return h("section", {}, h("h1", {}, `${t("budgets")} · ${ctx.env}`), h("p", { class: "help" }, t("budgetsHelp")),
    operator ? null : notice(t("budgetsOperatorOnly"), "info"), status, list, operator ? budgetForm(ctx, keys) : null);
}
