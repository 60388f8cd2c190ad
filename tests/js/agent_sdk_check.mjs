// Drives the official agent clients against a gateway, exactly as an app would, and prints what they got
// as one JSON line. Usage: node agent_sdk_check.mjs <gatewayUrl> <apiKey> <agentId> <mode>
//   mode "cloudbase-ai": @cloudbase/ai's bot module (list, get, create, sendMessage, getChatRecords)
//   mode "ag-ui":        @ag-ui/client's HttpAgent on send-message (a run, then a second turn on its thread)
//   mode "ag-ui-tool":   HttpAgent with a client-declared tool: the run ends with the call for the client
//   mode "js-sdk":       @cloudbase/js-sdk's app.ai().bot.sendMessage with an AG-UI body (baseUrl: the gateway)
import { createAI } from "@cloudbase/ai";
import { HttpAgent } from "@ag-ui/client";
import { createRequire } from "node:module";

// js-sdk's CommonJS build: its ESM build fails to construct its TextDecoder polyfill under Node.
const cloudbase = createRequire(import.meta.url)("@cloudbase/js-sdk");

const [gateway, apiKey, agentId, mode] = process.argv.slice(2);
const out = {};

async function cloudbaseAi() {
  // The SDK's request adapter contract: fetch({url, method, headers, body, stream}) -> {data, header}.
  const req = {
    async fetch({ url, method = "POST", headers = {}, body, stream }) {
      const clean = Object.fromEntries(Object.entries(headers).filter(([k, v]) => k !== "undefined" && v != null));
      const res = await fetch(url, { method: method.toUpperCase(), headers: clean, body });
      const data = stream ? res.body : res.json();
      return { data, header: res.headers, statusCode: res.status };
    },
  };
  const i18n = { t: (text) => text, LANG_HEADER_KEY: "x-lang", lang: "zh-CN" };
  const ai = createAI({ baseUrl: `${gateway}/v1`, req, i18n, getAccessToken: async () => ({ accessToken: apiKey }) });
  out.list = await ai.bot.list({ pageSize: 10, pageNumber: 1 });
  out.get = await ai.bot.get({ botId: agentId });
  try {
    out.created = await ai.bot.create({ botInfo: { name: `sdk-made-${Date.now()}`, model: out.get.model,
      agentSetting: "Answer briefly.", welcomeMessage: "Hi from the SDK", initQuestions: ["What now?"] } });
  } catch (e) {
    out.createError = String(e.message || e);
  }
  const res = await ai.bot.sendMessage({ botId: agentId, msg: "hello agent", history: [] });
  out.chunks = [];
  for await (const chunk of res.dataStream) out.chunks.push(chunk);
  out.text = out.chunks.map((c) => c.content || "").join("");
  out.records = await ai.bot.getChatRecords({ botId: agentId, sort: "asc", pageSize: 10, pageNumber: 1 });
}

async function agUi(withTool) {
  const agent = new HttpAgent({ url: `${gateway}/v1/aibot/bots/${agentId}/send-message`,
    headers: { Authorization: `Bearer ${apiKey}` }, threadId: `thread-sdk-${Date.now()}` });
  const events = [];
  agent.messages = [{ id: "m1", role: "user", content: "hello agent" }];
  const tools = withTool ? [{ name: "get_weather", description: "the weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } } } }] : [];
  const first = await agent.runAgent({ tools }, { onEvent: ({ event }) => { events.push(event.type); } });
  out.events = events;
  out.messages = agent.messages.map((m) => ({ role: m.role, content: m.content ?? null,
    toolCalls: m.toolCalls ?? null }));
  out.newMessages = first.newMessages.length;
  if (!withTool) {
    agent.messages.push({ id: "m3", role: "user", content: "and again" });
    const second = [];
    await agent.runAgent({}, { onEvent: ({ event }) => { second.push(event.type); } });
    out.secondEvents = second;
    out.threadId = agent.threadId;
  }
}

async function jsSdk() {
  const app = cloudbase.init({ env: "cbgate-test", accessKey: apiKey });
  const ai = app.ai({ baseUrl: `${gateway}/v1` });
  const res = await ai.bot.sendMessage({ botId: agentId, threadId: `thread-js-${Date.now()}`, runId: "run-js",
    messages: [{ id: "1", role: "user", content: "hello from js-sdk" }], tools: [], context: [], state: {},
    forwardedProps: {} });
  out.events = [];
  for await (const event of res.dataStream) out.events.push(event);
  out.text = out.events.filter((e) => e.type === "TEXT_MESSAGE_CONTENT").map((e) => e.delta).join("");
}

try {
  if (mode === "cloudbase-ai") await cloudbaseAi();
  else if (mode === "js-sdk") await jsSdk();
  else await agUi(mode === "ag-ui-tool");
} catch (e) {
  out.error = String(e.message || e);
}
console.log(JSON.stringify(out));
