// Drives the official @cloudbase/ai SDK against a gateway, exactly as an app would, and prints what it
// got as one JSON line. Usage: node cloudbase_sdk_check.mjs <gatewayUrl> <apiKey> <model> [group]
import { createAI } from "@cloudbase/ai";

const [gateway, apiKey, model, group = "cloudbase"] = process.argv.slice(2);

// The SDK's request adapter contract: fetch({url, method, headers, body, stream}) -> {data, header}.
const req = {
  async fetch({ url, method = "POST", headers = {}, body, stream }) {
    const clean = Object.fromEntries(Object.entries(headers).filter(([k, v]) => k !== "undefined" && v != null));
    const res = await fetch(url, { method, headers: clean, body });
    // Like the SDK's own adapters: a stream for SSE, else a promise of the JSON body.
    const data = stream ? res.body : res.json();
    return { data, header: res.headers, statusCode: res.status };
  },
};

// The SDK reads its message catalogue from `i18n` (the Cloudbase app passes its own); keep the texts as they are.
const i18n = { t: (text) => text, LANG_HEADER_KEY: "x-lang", lang: "zh-CN" };
const ai = createAI({ baseUrl: `${gateway}/v1`, req, i18n, getAccessToken: async () => ({ accessToken: apiKey }) });
const chat = ai.createModel(group);
const messages = [{ role: "user", content: "你好" }];
const out = {};
try {
  const generated = await chat.generateText({ model, messages, max_tokens: 16 });
  out.generateText = { text: generated.text, usage: generated.usage };
} catch (e) {
  out.generateTextError = String(e.message || e);
}
try {
  const streamed = await chat.streamText({ model, messages, max_tokens: 16 });
  let text = "";
  for await (const piece of streamed.textStream) text += piece;
  out.streamText = { text, usage: await streamed.usage };
} catch (e) {
  out.streamTextError = String(e.message || e);
}
console.log(JSON.stringify(out));
