// The prices page: every model's price per group (uniform or tiered by prompt tokens; input, output and cache
// read per 1,000 tokens; a currency), where it comes from, and for an operator the form that sets a price or
// one tier, and a delete per price or tier. Prices come and go as the API's decimal strings, never floats.
import { api, envPath, field, h } from "./api.js";
import { t } from "./i18n.js";
import { attempt, notice, statusLine } from "./pages.js";

const COLUMNS = ["model", "priceType", "tier", "inputPrice", "outputPrice", "cachePrice", "currency", "priceSource", ""];

function deleteButton(ctx, p, tier, status) {
  const query = tier ? `?tier=${encodeURIComponent(tier)}` : "";
  const path = envPath(ctx.env, `/prices/${encodeURIComponent(p.group)}/${encodeURIComponent(p.model)}${query}`);
  return h("button", { type: "button", class: "danger", "data-test": "delete-price", onclick: async () => {
    if (confirm(t("confirmDeletePrice")) && await attempt(status, () => api("DELETE", path))) ctx.refresh();
  } }, t(tier ? "deleteTier" : "delete"));
}

// One row per tier (one for a uniform price, one saying "unpriced" for none).
function priceRows(ctx, p, form, status) {
  const name = `${p.group}/${p.model}`;
  const mine = form && p.source === "env";
  if (!p.tiers.length) {
    return [h("tr", { "data-price": name, "data-unpriced": "" }, h("td", {}, p.model),
      h("td", { colspan: COLUMNS.length - 2, class: "help" }, t("unpriced")),
      h("td", {}, form ? h("button", { type: "button", class: "secondary", onclick: () => form.edit(p) }, t("setPrice")) : ""))];
  }
  const tiered = p.type === "Tiered";
  return p.tiers.map((tier, i) => h("tr", { "data-price": name, "data-tier": tier.tier },
    h("td", {}, i === 0 ? p.model : ""), h("td", {}, i === 0 ? t(tiered ? "tiered" : "uniform") : ""),
    h("td", {}, tiered ? tier.tier : t("allPrompts")), h("td", {}, tier.input), h("td", {}, tier.output),
    h("td", {}, tier.cache ?? "-"), h("td", {}, p.currency), h("td", {}, t(`source_${p.source}`)),
    h("td", {}, h("span", { class: "row" }, form ? h("button", { type: "button", class: "secondary", "data-test": "edit-price",
      onclick: () => form.edit(p, tiered ? tier : null) }, t("edit")) : null,
    mine ? deleteButton(ctx, p, tiered ? tier.tier : null, status) : null))));
}

function groupTable(ctx, group, prices, form, status) {
  return [h("h2", {}, group), h("table", { "data-test": `prices-${group}` },
    h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", {}, c ? t(c) : "")))),
    h("tbody", {}, prices.flatMap((p) => priceRows(ctx, p, form, status))))];
}

// The operator's form: a model, an optional tier, the prices and the currency, saved in one PUT.
function priceForm(ctx, prices) {
  const status = statusLine("price-status");
  const input = (test, attrs = {}) => h("input", { "data-test": test, autocomplete: "off", ...attrs });
  const model = h("select", { required: true, "data-test": "price-model" },
    prices.map((p) => h("option", { value: `${p.group}/${p.model}` }, `${p.group}/${p.model}`)));
  const tier = input("price-tier", { placeholder: "0-16k" });
  const inPrice = input("price-input", { required: true, inputmode: "decimal", placeholder: "0.0008" });
  const outPrice = input("price-output", { required: true, inputmode: "decimal", placeholder: "0.002" });
  const cache = input("price-cache", { inputmode: "decimal", placeholder: "-" });
  const currency = input("price-currency", { placeholder: "CNY", size: 4 });
  const form = h("form", { class: "settings", "data-test": "price-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const [group, ...rest] = model.value.split("/");
    const body = { input: inPrice.value.trim(), output: outPrice.value.trim() };
    if (cache.value.trim()) body.cache = cache.value.trim();
    if (tier.value.trim()) body.tier = tier.value.trim();
    if (currency.value.trim()) body.currency = currency.value.trim();
    const path = envPath(ctx.env, `/prices/${encodeURIComponent(group)}/${encodeURIComponent(rest.join("/"))}`);
    if (await attempt(status, () => api("PUT", path, body))) ctx.refresh();
  } }, h("div", { class: "row" }, field(t("model"), model), field(t("tier"), tier, t("tierHint")),
    field(t("inputPrice"), inPrice, t("perThousand")), field(t("outputPrice"), outPrice, t("perThousand")),
    field(t("cachePrice"), cache, t("cacheHint")), field(t("currency"), currency)),
  h("div", { class: "row" }, h("button", { "data-test": "set-price" }, t("setPrice"))));
  const edit = (p, tierView) => {  // fill the form from a row, to change it
    model.value = `${p.group}/${p.model}`;
    tier.value = tierView ? tierView.tier : "";
    inPrice.value = tierView?.input ?? p.tiers[0]?.input ?? "";
    outPrice.value = tierView?.output ?? p.tiers[0]?.output ?? "";
    cache.value = (tierView ?? p.tiers[0])?.cache ?? "";
    currency.value = p.currency ?? "";
    form.scrollIntoView({ block: "nearest" });
    inPrice.focus();
  };
  return { nodes: [h("h2", {}, t("setPrice")), form, status], edit };
}

export async function pricesPage(ctx) {
  const { data } = await api("GET", envPath(ctx.env, "/prices"));
  const operator = ctx.me.kind === "operator";
  const form = operator ? priceForm(ctx, data) : null;
  const status = statusLine("price-list-status");
  const groups = [...new Set(data.map((p) => p.group))];
  return h("section", {}, h("h1", {}, `${t("prices")} · ${ctx.env}`),
    h("p", { class: "help" }, t("pricesHelp")),
    operator ? null : notice(t("pricesOperatorOnly"), "info"),
    status, groups.flatMap((g) => groupTable(ctx, g, data.filter((p) => p.group === g), form, status)),
    form ? form.nodes : null);
}
