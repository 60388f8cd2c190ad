// The playground: streams a chat answer over the SSE chat API (fetch + ReadableStream), like any client.
import { api, envPath, h } from "./api.js";
import { t } from "./i18n.js";

const keyStore = (env) => `cbgate.playgroundKey.${env}`;

// A signed-in server key chats as itself. An operator token is no chat key, so the operator picks an env
// and the console makes (once per tab) a server key named "console playground" in it.
function chatKey(ctx) {
  return ctx.me.kind === "server" ? sessionStorage.getItem("cbgate.token") : sessionStorage.getItem(keyStore(ctx.env));
}

// Yield each `data:` payload of an SSE body.
async function* sseData(body) {
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

async function streamChat(group, model, content, key, output, signal) {
  const resp = await fetch(`/v1/ai/${encodeURIComponent(group)}/chat/completions`, {
    method: "POST", signal,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content }] }),
  });
  if (!resp.ok || !(resp.headers.get("content-type") || "").startsWith("text/event-stream")) {
    const err = await resp.json().catch(() => ({}));
    throw Object.assign(new Error(err.message || `HTTP ${resp.status}`), { code: err.code || "SYS_ERR" });
  }
  for await (const data of sseData(resp.body)) {
    if (data === "[DONE]") return;
    const chunk = JSON.parse(data);
    if (chunk.code) throw Object.assign(new Error(chunk.message), { code: chunk.code });
    const delta = chunk.choices?.[0]?.delta;
    if (delta?.content) output.textContent += delta.content;
  }
}

export async function playgroundPage(ctx) {
  const { data } = await api("GET", envPath(ctx.env, "/groups"));
  const choices = data.flatMap((g) => (g.enabled === false || g.has_key === false ? [] : g.models.filter((m) => m.enabled)
    .map((m) => ({ group: g.name, model: m.name }))));
  const status = h("div");
  const page = h("section", {}, h("h1", {}, `${t("playground")} · ${ctx.env}`), status);
  if (!choices.length) {
    page.append(h("p", { class: "notice info" }, t("noModels")));
    return page;
  }
  if (ctx.me.kind === "server") {
    page.append(h("p", { class: "help" }, t("usingOwnKey")));
  } else if (!chatKey(ctx)) {
    page.append(h("p", { class: "help" }, t("playgroundKeyHelp")), h("button", { "data-test": "make-playground-key",
      onclick: async () => {
        const made = await api("POST", envPath(ctx.env, "/keys"), { name: "console playground", kind: "server" });
        sessionStorage.setItem(keyStore(ctx.env), made.key);
        ctx.refresh();
      } }, t("createPlaygroundKey")));
    return page;
  }
  const model = h("select", { "data-test": "playground-model" },
    choices.map((c, i) => h("option", { value: i }, `${c.group} / ${c.model}`)));
  const prompt = h("textarea", { rows: 4, "data-test": "playground-prompt", placeholder: t("prompt") });
  const output = h("pre", { class: "answer", "data-test": "playground-answer", "aria-live": "polite" });
  const stop = h("button", { type: "button", disabled: true, "data-test": "playground-stop" }, t("stop"));
  const send = h("button", { "data-test": "playground-send" }, t("send"));
  let controller = null;
  stop.addEventListener("click", () => controller?.abort());
  page.append(h("form", { onsubmit: async (ev) => {
    ev.preventDefault();
    const choice = choices[Number(model.value)];
    output.textContent = "";
    status.replaceChildren();
    controller = new AbortController();
    send.disabled = true; stop.disabled = false;
    output.dataset.state = "streaming";
    try {
      await streamChat(choice.group, choice.model, prompt.value, chatKey(ctx), output, controller.signal);
      output.dataset.state = "done";
    } catch (err) {
      output.dataset.state = "failed";
      if (err.code === "INVALID_ACCESS_TOKEN" && ctx.me.kind === "operator") {
        sessionStorage.removeItem(keyStore(ctx.env));  // revoked meanwhile: offer to make a new one
      }
      if (err.name !== "AbortError") {
        status.replaceChildren(h("p", { class: "notice error", role: "alert", "data-test": "notice-error" },
          `${t("error")}: ${err.code} ${err.message}`));
      }
    } finally {
      send.disabled = false; stop.disabled = true;
    }
  } }, h("label", {}, t("model"), " ", model), prompt, h("div", { class: "row" }, send, stop)),
  h("h2", {}, t("answer")), output);
  return page;
}
