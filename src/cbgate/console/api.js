// The admin API client and a tiny DOM builder. The token lives in sessionStorage: gone when the tab closes.
const TOKEN = "cbgate.token";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || "SYS_ERR";
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  set token(value) { value ? sessionStorage.setItem(TOKEN, value) : sessionStorage.removeItem(TOKEN); },
  get env() { return sessionStorage.getItem("cbgate.env"); },
  set env(value) { sessionStorage.setItem("cbgate.env", value); },
};

export async function api(method, path, body, token = session.token) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(`/admin/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

export const envPath = (env, tail = "") => `/envs/${encodeURIComponent(env)}${tail}`;

// h("button", {onclick, class: "x", "data-test": "y"}, "text", child...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name in el && name !== "list") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

// A labelled form field: <label><span>text</span>input<small>hint</small></label>.
export function field(text, input, hint) {
  return h("label", { class: "field" }, h("span", {}, text), input, hint ? h("small", { class: "help" }, hint) : null);
}

export function when(ts) {
  return ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) : "-";
}

export function table(headers, rows, test) {
  return h("table", { "data-test": test },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))));
}
