// The agents page: the environment's agents (run on a model, or fronting an AG-UI server), the form that
// adds one, and a chat with an agent over its AG-UI stream that shows text, tool calls and the results of the
// MCP tools the gateway ran as they arrive.
import { api, envPath, field, h, table, when } from "./api.js";
import { t } from "./i18n.js";
import { attempt, notice, statusLine } from "./pages.js";
import { chatKey, sseData } from "./playground.js";

function createForm(ctx) {
  const status = statusLine("agent-status");
  const input = (test, attrs = {}) => h("input", { "data-test": test, ...attrs });
  const name = input("agent-name", { required: true });
  const model = input("agent-model", { placeholder: "smollm2-135m-instruct" });
  const group = input("agent-group", { placeholder: "cloudbase" });
  const url = input("agent-url", { type: "url", placeholder: "https://agents.example.com/support" });
  const instructions = h("textarea", { rows: 3, "data-test": "agent-instructions" });
  const welcome = input("agent-welcome");
  const services = input("agent-mcp-services", { placeholder: "search, tools" });
  const form = h("form", { onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { name: name.value.trim() };
    if (url.value.trim()) body.url = url.value.trim();
    else Object.assign(body, { model: model.value.trim(), group: group.value.trim() || undefined });
    if (instructions.value) body.instructions = instructions.value;
    if (welcome.value) body.welcome = welcome.value;
    const named = services.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (named.length) body.mcp_services = named;
    if (await attempt(status, () => api("POST", envPath(ctx.env, "/agents"), body))) ctx.refresh();
  } }, h("div", { class: "row" }, field(t("name"), name), field(t("model"), model), field(t("group"), group)),
  field(t("agent_url"), url, t("agent_url_hint")), field(t("agent_instructions"), instructions),
  field(t("agent_welcome"), welcome), field(t("agent_mcp_services"), services, t("agent_mcp_services_hint")),
  h("button", { "data-test": "create-agent" }, t("createAgent")));
  return [h("h2", {}, t("createAgent")), form, status];
}

// One run: POST the thread's messages to send-message and render its AG-UI events into `log`. What the run
// said joins the thread as AG-UI clients keep it: assistant messages (with their tool calls) and the tool
// messages of the calls the gateway ran, so the next turn sends the model a whole conversation.
async function run(ctx, agent, thread, tools, log) {
  const resp = await fetch(`/v1/aibot/bots/${encodeURIComponent(agent)}/send-message`, {
    method: "POST",
    headers: { Authorization: `Bearer ${await chatKey(ctx)}`, "Content-Type": "application/json",
      Accept: "text/event-stream" },
    body: JSON.stringify({ threadId: thread.id, runId: crypto.randomUUID(), messages: thread.messages, tools,
      context: [], state: {}, forwardedProps: {} }),
  });
  if (!resp.ok || !(resp.headers.get("content-type") || "").startsWith("text/event-stream")) {
    const err = await resp.json().catch(() => ({}));
    log.append(notice(`${t("error")}: ${err.code || resp.status} ${err.message || ""}`, "error"));
    return;
  }
  const said = [];
  const calls = {};
  let text = null;
  const assistant = () => {
    const last = said[said.length - 1];
    if (last && last.role === "assistant") return last;
    said.push({ id: crypto.randomUUID(), role: "assistant", content: "", toolCalls: [] });
    return said[said.length - 1];
  };
  for await (const data of sseData(resp.body)) {
    const event = JSON.parse(data);
    if (event.type === "TEXT_MESSAGE_START") {
      text = h("p", { class: "answer", "data-test": "agent-answer" });
      log.append(text);
    }
    if (event.type === "TEXT_MESSAGE_CONTENT" && text) {
      const message = assistant();
      message.content += event.delta;
      text.textContent += event.delta;
    }
    if (event.type === "TOOL_CALL_START") {
      calls[event.toolCallId] = { id: event.toolCallId, type: "function",
        function: { name: event.toolCallName, arguments: "" }, line: h("p", { class: "tool", "data-test": "tool-call" }) };
      assistant().toolCalls.push(calls[event.toolCallId]);
      log.append(calls[event.toolCallId].line);
    }
    const call = calls[event.toolCallId];
    if (event.type === "TOOL_CALL_ARGS" && call) call.function.arguments += event.delta;
    if (call) call.line.textContent = `${t("toolCall")}: ${call.function.name}(${call.function.arguments})`;
    if (event.type === "TOOL_CALL_RESULT") {
      said.push({ id: event.messageId, role: "tool", toolCallId: event.toolCallId, content: event.content });
      log.append(h("p", { class: "tool", "data-test": "tool-result" }, `${t("toolResult")}: ${event.content}`));
    }
    if (event.type === "RUN_ERROR") log.append(notice(`${t("error")}: ${event.code} ${event.message}`, "error"));
  }
  for (const message of said) {
    if (message.role !== "assistant") continue;
    message.toolCalls = message.toolCalls.map(({ line, ...c }) => c);
    if (!message.toolCalls.length) delete message.toolCalls;
  }
  thread.messages.push(...said);
}

function chatPanel(ctx, agents) {
  const select = h("select", { "data-test": "chat-agent" }, agents.map((a) => h("option", { value: a.id }, a.name)));
  const message = h("input", { required: true, "data-test": "agent-message" });
  const tools = h("textarea", { rows: 2, "data-test": "agent-tools",
    placeholder: '[{"name": "get_weather", "description": "...", "parameters": {"type": "object"}}]' });
  const log = h("div", { class: "log", "data-test": "agent-log" });
  const status = statusLine("chat-status");
  let thread = { id: crypto.randomUUID(), messages: [] };
  select.addEventListener("change", () => { thread = { id: crypto.randomUUID(), messages: [] }; log.replaceChildren(); });
  const form = h("form", { onsubmit: async (ev) => {
    ev.preventDefault();
    let declared = [];
    try {
      declared = tools.value.trim() ? JSON.parse(tools.value) : [];
    } catch (err) {
      status.replaceChildren(notice(`${t("error")}: ${t("agent_tools")} ${err.message}`, "error"));
      return;
    }
    thread.messages.push({ id: crypto.randomUUID(), role: "user", content: message.value });
    log.append(h("p", { class: "question" }, `${t("you")}: ${message.value}`));
    message.value = "";
    await attempt(status, () => run(ctx, select.value, thread, declared, log));
  } }, h("div", { class: "row" }, field(t("agent"), select), field(t("prompt"), message),
    h("button", { "data-test": "agent-send" }, t("send"))), field(t("agent_tools"), tools, t("agent_tools_hint")));
  return [h("h2", {}, t("agentChat")), form, status, log];
}

export async function agentsPage(ctx) {
  const { data } = await api("GET", envPath(ctx.env, "/agents"));
  const listStatus = statusLine("agent-list-status");
  const runsOn = (a) => a.kind === "url" ? a.url
    : `${a.group}/${a.model}${a.mcp_services.length ? ` + MCP ${a.mcp_services.join(", ")}` : ""}`;
  const rows = data.map((a) => [a.name, a.id, runsOn(a), a.welcome || "-",
    when(Date.parse(a.created_at) / 1000), h("button", { class: "danger", "data-test": `delete-agent-${a.name}`,
      onclick: async () => {
        if (confirm(t("confirmDeleteAgent")) &&
            await attempt(listStatus, () => api("DELETE", envPath(ctx.env, `/agents/${a.id}`)))) ctx.refresh();
      } }, t("delete"))]);
  return h("section", {}, h("h1", {}, `${t("agents")} · ${ctx.env}`),
    data.length ? table([t("name"), t("id"), t("agent_runs_on"), t("agent_welcome"), t("created"), ""], rows,
      "agent-table") : h("p", { class: "help" }, t("noAgents")), listStatus,
    data.length ? chatPanel(ctx, data) : null, createForm(ctx));
}
