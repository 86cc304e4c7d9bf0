// A stand-in MCP server (stdio, official SDK) for one AgentDojo suite: it lists the suite's tools with their own
// input schemas and answers every call from canned data. The perimeter's verdict never depends on the answer, only
// on the tool, its definition and the arguments, so the stand-in does not model the suite's environment.
//   node bench/agentdojo/server.ts workspace|travel|banking|slack
import { Server } from "@modelcontextprotocol/server";
import { StdioServerTransport } from "@modelcontextprotocol/server/stdio";
import { SUITES, suiteTools } from "./suites.ts";
import type { Suite } from "./suites.ts";

const suite = process.argv[2] as Suite;
if (!SUITES.includes(suite)) {
  process.stderr.write(`usage: server.ts ${SUITES.join("|")}\n`);
  process.exit(2);
}
const tools = suiteTools(suite).map((tool) => ({ name: tool.name, description: tool.description, inputSchema: { ...tool.input_schema, type: "object" as const } }));
const names = new Set(tools.map((tool) => tool.name));
const server = new Server({ name: `agentdojo-${suite}`, version: "1.2.0" }, { capabilities: { tools: {} } });
server.setRequestHandler("tools/list", () => ({ tools }));
server.setRequestHandler("tools/call", (request) => {
  const { name } = request.params;
  if (!names.has(name)) return { content: [{ type: "text", text: `unknown tool ${name}` }], isError: true };
  return { content: [{ type: "text", text: `${suite}.${name}: done (stand-in answer)` }] };
});
await server.connect(new StdioServerTransport());
