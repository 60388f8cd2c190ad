// Reads one chat stream through the `openai` JS SDK and through the Vercel AI SDK's OpenAI provider
// (`ai` + `@ai-sdk/openai`), unchanged, and prints the text and usage each saw as one JSON line.
// Usage: node openai_stream_check.mjs <baseURL, e.g. http://127.0.0.1:8080/v1/ai/cloudbase/v1> <apiKey> <model>
import OpenAI from "openai";
import { streamText } from "ai";
import { createOpenAI } from "@ai-sdk/openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const messages = [{ role: "user", content: "hello there" }];
const out = {};

try {
  const client = new OpenAI({ baseURL, apiKey });
  const stream = await client.chat.completions.create({ model, messages, stream: true });
  let text = "", usage = null, finish = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
    if (chunk.usage) usage = chunk.usage;
  }
  out.openai = { text, usage, finish };
} catch (e) {
  out.openaiError = String(e.message || e);
}

try {
  const provider = createOpenAI({ baseURL, apiKey });
  const result = streamText({ model: provider.chat(model), messages });
  let text = "";
  for await (const piece of result.textStream) text += piece;
  out.vercel = { text, usage: await result.usage, finish: await result.finishReason };
} catch (e) {
  out.vercelError = String(e.message || e);
}
console.log(JSON.stringify(out));
