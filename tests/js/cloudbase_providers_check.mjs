// Drives every named provider of the official @cloudbase/ai SDK (createModel(name)) and its image model
// against a gateway, as an app would, and prints what each answered as one JSON line.
// Usage: node cloudbase_providers_check.mjs <gatewayUrl> <apiKey> <spec JSON>
//   spec: {"chat": {"<provider>": "<model>", ...}, "image": {"provider": "...", "body": {...}}}
import { createAI } from "@cloudbase/ai";

const [gateway, apiKey, specText] = process.argv.slice(2);
const spec = JSON.parse(specText);

// The SDK's request adapter contract: fetch({url, method, headers, body, stream}) -> {data, header}.
const seen = [];
const req = {
  async fetch({ url, method = "POST", headers = {}, body, stream }) {
    seen.push(new URL(url).pathname);
    const clean = Object.fromEntries(Object.entries(headers).filter(([k, v]) => k !== "undefined" && v != null));
    const res = await fetch(url, { method, headers: clean, body });
    const data = stream ? res.body : res.json();
    return { data, header: res.headers, statusCode: res.status };
  },
};
const i18n = { t: (text) => text, LANG_HEADER_KEY: "x-lang", lang: "zh-CN" };
const ai = createAI({ baseUrl: `${gateway}/v1`, req, i18n, getAccessToken: async () => ({ accessToken: apiKey }) });
const messages = [{ role: "user", content: "你好" }];
const out = { chat: {} };

for (const [provider, model] of Object.entries(spec.chat || {})) {
  const result = {};
  const chat = ai.createModel(provider);
  try {
    const generated = await chat.generateText({ model, messages, max_tokens: 16 });
    result.generateText = { text: generated.text, usage: generated.usage, path: seen.at(-1) };
  } catch (e) {
    result.generateTextError = String(e.message || e);
  }
  try {
    const streamed = await chat.streamText({ model, messages, max_tokens: 16 });
    let text = "";
    for await (const piece of streamed.textStream) text += piece;
    result.streamText = { text, usage: await streamed.usage, path: seen.at(-1) };
  } catch (e) {
    result.streamTextError = String(e.message || e);
  }
  out.chat[provider] = result;
}
if (spec.image) {
  try {
    const image = await ai.createImageModel(spec.image.provider).generateImage(spec.image.body);
    out.image = { answer: image, path: seen.at(-1) };
  } catch (e) {
    out.imageError = String(e.message || e);
  }
}
console.log(JSON.stringify(out));
