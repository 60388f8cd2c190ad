// @cloudbase/mcp's PostClientTransport (plain JSON-RPC over POST) with the official MCP SDK client, pointed
// at cbgate: node cloudbase_mcp_check.mjs <endpoint URL> <API key>. Prints one JSON line of what it saw.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { PostClientTransport } from '@cloudbase/mcp/transport/client/post';

const [url, key] = process.argv.slice(2);
const transport = new PostClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: 'cbgate-check', version: '1.0.0' });
const out = {};
try {
  await client.connect(transport);
  out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
  out.sum = (await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })).structuredContent;
  try {
    await client.callTool({ name: 'secret', arguments: {} });
    out.secret = 'answered';
  } catch (err) {
    out.secret = { code: err.code, message: err.message, data: err.data };
  }
  out.resource = (await client.readResource({ uri: 'demo://greeting' })).contents[0].text;
} catch (err) {
  out.error = String(err && err.message ? err.message : err);
}
console.log(JSON.stringify(out));
await client.close();
