// The playground: a multi-turn chat over the SSE chat API (fetch + ReadableStream), like any client, with
// a system prompt, temperature and max_tokens, tokens and latency per answer, stop, and "copy as code".
import { api, envPath, field, h, session, when } from "./api.js";
import { t } from "./i18n.js";
import { curlSnippet, jsSnippet, pythonSnippet } from "./snippets.js";
import { notice, statusLine } from "./pages.js";

// An operator token is no chat key. The console makes one short-lived server key per browser and env,
// kept in localStorage so every tab reuses it (a Web Lock stops two tabs minting one each).
const KEY_PREFIX = "cbgate.playground.";
const KEY_HOURS = 8;

function storedKey(env) {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY_PREFIX + env));
    return saved && saved.expires_at * 1000 > Date.now() + 60_000 ? saved : null;
  } catch {
    return null;
  }
}

async function playgroundKey(env) {
  const mint = async () => {
    const live = storedKey(env);
    if (live) return live;
    const made = await api("POST", envPath(env, "/keys"),
      { name: "console playground", kind: "server", expires_days: KEY_HOURS / 24 });
    const saved = { key: made.key, id: made.id, prefix: made.prefix, expires_at: made.expires_at };
    localStorage.setItem(KEY_PREFIX + env, JSON.stringify(saved));
    return saved;
  };
  return navigator.locks ? navigator.locks.request(`${KEY_PREFIX}${env}`, mint) : mint();
}

// On sign-out: revoke this browser's playground keys (best effort) and forget them.
export async function forgetPlaygroundKeys() {
  const names = Object.keys(localStorage).filter((name) => name.startsWith(KEY_PREFIX));
  await Promise.all(names.map(async (name) => {
    const saved = storedKey(name.slice(KEY_PREFIX.length));
    if (saved) await api("DELETE", envPath(name.slice(KEY_PREFIX.length), `/keys/${saved.id}`)).catch(() => {});
    localStorage.removeItem(name);
  }));
}

// Yield each `data:` payload of an SSE body.
export async function* sseData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (data) yield data;
    }
  }
}

const failure = (code, message) => Object.assign(new Error(message), { code });

// Stream one answer into `out.text`; returns {tokens, firstMs, totalMs}.
async function streamChat(request, key, out, signal) {
  const started = performance.now();
  const resp = await fetch(`/v1/ai/${encodeURIComponent(request.group)}/chat/completions`, {
    method: "POST", signal,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify({ ...request.body, stream: true, stream_options: { include_usage: true } }),
  });
  if (!resp.ok || !(resp.headers.get("content-type") || "").startsWith("text/event-stream")) {
    const err = await resp.json().catch(() => ({}));
    throw failure(err.code || "SYS_ERR", err.message || `HTTP ${resp.status}`);
  }
  const stats = { tokens: null, firstMs: null, totalMs: null };
  for await (const data of sseData(resp.body)) {
    if (data === "[DONE]") break;
    const chunk = JSON.parse(data);
    if (chunk.code) throw failure(chunk.code, chunk.message);
    if (chunk.usage) stats.tokens = chunk.usage.completion_tokens;
    const delta = chunk.choices?.[0]?.delta;
    if (delta?.content) {
      stats.firstMs ??= performance.now() - started;
      out.text.textContent += delta.content;
    }
  }
  stats.totalMs = performance.now() - started;
  return stats;
}

function statsLine(stats, stopped) {
  const parts = [];
  if (stats.tokens !== null) parts.push(t("tokensOut", { n: stats.tokens }));
  if (stats.firstMs !== null) parts.push(t("firstToken", { n: Math.round(stats.firstMs) }));
  if (stats.totalMs !== null) parts.push(t("totalTime", { n: Math.round(stats.totalMs) }));
  if (stopped) parts.push(t("stopped"));
  return parts.join(" · ");
}

function bubble(role, content) {
  const text = h("div", { class: "text" }, content);
  const meta = h("div", { class: "meta", "data-test": role === "assistant" ? "answer-stats" : null });
  const el = h("div", { class: `msg ${role}`, "data-role": role, "data-test": `msg-${role}` },
    h("div", { class: "who" }, t(role === "user" ? "you" : "assistant")), text, meta);
  return { el, text, meta };
}

// The settings column: model, system prompt, temperature, max_tokens; request(messages) builds the call.
function settings(choices) {
  const model = h("select", { "data-test": "playground-model" },
    choices.map((c, i) => h("option", { value: i }, `${c.group} / ${c.model}`)));
  const system = h("textarea", { rows: 3, "data-test": "playground-system" });
  const temperature = h("input", { type: "number", min: "0", max: "2", step: "0.1", value: "0.7",
    "data-test": "playground-temperature" });
  const maxTokens = h("input", { type: "number", min: "1", step: "1", value: "256", "data-test": "playground-max-tokens" });
  const request = (messages) => {
    const choice = choices[Number(model.value)];
    const body = { model: choice.model, messages: [
      ...(system.value.trim() ? [{ role: "system", content: system.value.trim() }] : []), ...messages] };
    if (temperature.value !== "") body.temperature = Number(temperature.value);
    if (maxTokens.value !== "") body.max_tokens = Number(maxTokens.value);
    return { group: choice.group, body };
  };
  const fields = [field(t("model"), model), field(t("systemPrompt"), system),
    h("div", { class: "row" }, field(t("temperature"), temperature), field(t("maxTokens"), maxTokens))];
  return { fields, request };
}

// "Copy as": the conversation so far plus the message being typed, as code; shown and put on the clipboard.
function copyButtons(nextRequest) {
  const snippet = h("pre", { class: "snippet", hidden: true, "data-test": "snippet" });
  const button = (kind, label, make) => h("button", { type: "button", class: "secondary", "data-test": `copy-${kind}`,
    onclick: async () => {
      const code = make(location.origin, nextRequest());
      snippet.textContent = code;
      snippet.hidden = false;
      snippet.dataset.kind = kind;
      await navigator.clipboard?.writeText(code).catch(() => {});
    } }, label);
  return [h("div", { class: "row" }, h("span", {}, t("copyAs")), button("curl", "curl", curlSnippet),
    button("python", "Python", pythonSnippet), button("js", "JS", jsSnippet)),
  h("p", { class: "help" }, t("snippetHelp")), snippet];
}

// The key a page chats with: the signed-in server key, or this browser's playground key (operators).
export async function chatKey(ctx) {
  return ctx.me.kind !== "operator" ? session.token : (await playgroundKey(ctx.env)).key;
}

// Stream one answer with the chat key: the signed-in server key, or this browser's playground key, which
// is made again once when it expired or was revoked meanwhile.
async function answer(ctx, req, out, signal) {
  if (ctx.me.kind !== "operator") return streamChat(req, session.token, out, signal);
  try {
    return await streamChat(req, (await playgroundKey(ctx.env)).key, out, signal);
  } catch (err) {
    if (!["INVALID_ACCESS_TOKEN", "ACCESS_TOKEN_EXPIRED"].includes(err.code)) throw err;
    localStorage.removeItem(KEY_PREFIX + ctx.env);
    return streamChat(req, (await playgroundKey(ctx.env)).key, out, signal);
  }
}

function keyHelp(ctx) {
  if (ctx.me.kind !== "operator") return t("usingOwnKey");
  const live = storedKey(ctx.env);
  return live ? t("playgroundKeyLive", { n: `${live.prefix}…`, when: when(live.expires_at) }) : t("playgroundKeyHelp");
}

// The chat column: history, the message box, send / stop / new chat. `turns` is the conversation so far.
function chat(ctx, request, turns, status) {
  const prompt = h("textarea", { rows: 3, required: true, "data-test": "playground-prompt" });
  const history = h("div", { class: "history", "data-test": "playground-history", "aria-live": "polite" });
  const stop = h("button", { type: "button", disabled: true, "data-test": "playground-stop" }, t("stop"));
  const send = h("button", { "data-test": "playground-send" }, t("send"));
  let controller = null;
  const newChat = h("button", { type: "button", class: "secondary", "data-test": "playground-new", onclick: () => {
    controller?.abort();
    turns.length = 0;
    history.replaceChildren();
    status.replaceChildren();
  } }, t("newChat"));
  stop.addEventListener("click", () => controller?.abort());

  async function ask() {
    const content = prompt.value.trim();
    if (!content) return;
    const req = request([...turns, { role: "user", content }]);
    const asked = bubble("user", content), out = bubble("assistant", "");
    history.append(asked.el, out.el);
    prompt.value = "";
    status.replaceChildren();
    controller = new AbortController();
    send.disabled = true; stop.disabled = false;
    out.el.dataset.state = "streaming";
    try {
      const stats = await answer(ctx, req, out, controller.signal);
      turns.push({ role: "user", content }, { role: "assistant", content: out.text.textContent });
      out.meta.textContent = statsLine(stats, false);
      out.el.dataset.state = "done";
    } catch (err) {
      if (err.name === "AbortError") {  // stopped: keep what came, as the model's answer so far
        turns.push({ role: "user", content }, { role: "assistant", content: out.text.textContent });
        out.meta.textContent = t("stopped");
        out.el.dataset.state = "stopped";
      } else {  // failed: the question goes back into the box, the error beside it
        asked.el.remove();
        out.el.remove();
        prompt.value = content;
        status.replaceChildren(notice(`${t("error")}: ${err.code} ${err.message}`, "error"));
      }
    } finally {
      send.disabled = false; stop.disabled = true;
    }
  }
  prompt.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); ask(); }
  });
  const column = h("div", { class: "chat" }, history,
    h("form", { onsubmit: async (ev) => { ev.preventDefault(); await ask(); } },
      field(t("prompt"), prompt), h("div", { class: "row" }, send, stop, newChat)), status);
  return { column, draft: () => prompt.value.trim() };
}

export async function playgroundPage(ctx) {
  const { data } = await api("GET", envPath(ctx.env, "/groups"));
  const choices = data.flatMap((g) => (g.enabled === false || g.has_key === false ? [] : g.models.filter((m) => m.enabled)
    .map((m) => ({ group: g.name, model: m.name }))));
  const page = h("section", {}, h("h1", {}, `${t("playground")} · ${ctx.env}`));
  if (!choices.length) {
    page.append(notice(t("noModels"), "info"));
    return page;
  }
  const turns = [];
  const { fields, request } = settings(choices);
  const conversation = chat(ctx, request, turns, statusLine("playground-status"));
  const nextRequest = () => request([...turns,
    ...(conversation.draft() ? [{ role: "user", content: conversation.draft() }] : [])]);
  page.append(h("p", { class: "help", "data-test": "playground-key-help" }, keyHelp(ctx)),
    h("div", { class: "playground" }, h("aside", {}, ...fields, ...copyButtons(nextRequest)), conversation.column));
  return page;
}
