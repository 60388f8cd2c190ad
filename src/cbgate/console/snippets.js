// "Copy as curl / Python / JS": the playground's current request as code a user can run. The key is
// never put in the code: each snippet reads CBGATE_API_KEY from the environment.

const chatUrl = (origin, group) => `${origin}/v1/ai/${encodeURIComponent(group)}/chat/completions`;
const pretty = (value) => JSON.stringify(value, null, 2);

export function curlSnippet(origin, { group, body }) {
  const json = pretty({ ...body, stream: true }).replace(/'/g, "'\\''");  // inside single quotes
  return [`curl -N '${chatUrl(origin, group)}' \\`, "  -H \"Authorization: Bearer $CBGATE_API_KEY\" \\",
    "  -H 'Content-Type: application/json' \\", `  -d '${json}'`].join("\n");
}

// A Python literal from JSON: true/false/null spelled the Python way.
function python(value, indent = "") {
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (Array.isArray(value)) {
    const inner = indent + "    ";
    return value.length ? `[\n${value.map((v) => inner + python(v, inner)).join(",\n")},\n${indent}]` : "[]";
  }
  if (typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${python(v, indent)}`).join(", ")}}`;
  }
  return JSON.stringify(value);
}

export function pythonSnippet(origin, { group, body }) {
  const { model, messages, ...rest } = body;
  const extra = Object.entries(rest).map(([k, v]) => `    ${k}=${python(v)},\n`).join("");
  return `import os

from openai import OpenAI  # pip install openai

client = OpenAI(base_url=${JSON.stringify(`${origin}/v1/ai/${group}/v1`)}, api_key=os.environ["CBGATE_API_KEY"])
stream = client.chat.completions.create(
    model=${JSON.stringify(model)},
    messages=${python(messages, "    ")},
${extra}    stream=True,
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
print()
`;
}

export function jsSnippet(origin, { group, body }) {
  return `// Node 18+: save as chat.mjs, run node chat.mjs
const resp = await fetch(${JSON.stringify(chatUrl(origin, group))}, {
  method: "POST",
  headers: { Authorization: \`Bearer \${process.env.CBGATE_API_KEY}\`, "Content-Type": "application/json" },
  body: JSON.stringify(${pretty({ ...body, stream: true }).replace(/\n/g, "\n  ")}),
});
if (!resp.ok) throw new Error(JSON.stringify(await resp.json()));
const decoder = new TextDecoder();
let buffer = "";
for await (const bytes of resp.body) {
  buffer += decoder.decode(bytes, { stream: true });
  let cut;
  while ((cut = buffer.indexOf("\\n\\n")) >= 0) {
    const data = buffer.slice(0, cut).replace(/^data: ?/, "");
    buffer = buffer.slice(cut + 2);
    if (data === "[DONE]") continue;
    process.stdout.write(JSON.parse(data).choices[0]?.delta?.content ?? "");
  }
}
process.stdout.write("\\n");
`;
}
