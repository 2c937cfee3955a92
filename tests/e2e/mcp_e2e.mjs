// End-to-end: the official MCP TypeScript SDK client against the real
// cde-orchestrator binary, over stdio and over Streamable HTTP.
//
//   node mcp_e2e.mjs /path/to/cde-orchestrator
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { check, finish, serveHttp, until } from "./lib.mjs";

const binary = process.argv[2];
const examples = new URL("../../docs/examples", import.meta.url).pathname;

// The whole conversation a user has: list, register, start, follow, errors.
async function conversation(client) {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  for (const n of ["list_workflows", "register_workflow", "start_workflow",
                   "get_saga", "cancel_saga", "replay_saga", "engine_stats"]) {
    assert.ok(names.includes(n), `tools/list lacks ${n}`);
  }
  const listed = await client.callTool({ name: "list_workflows", arguments: {} });
  assert.equal(listed.isError, false);
  assert.ok(listed.structuredContent.workflows.some((w) => w.name === "trip-booking"));

  const reg = await client.callTool({
    name: "register_workflow",
    arguments: { definition: { name: "hello", version: 1, steps: [
      { name: "greet", action: "echo", params: { text: "hello ${input.who}" } },
      { name: "nap", action: "sleep", params: { duration_ms: 20 } } ] } },
  });
  assert.equal(reg.isError, false, JSON.stringify(reg));

  const started = await client.callTool({
    name: "start_workflow",
    arguments: { workflow: "hello", input: { who: "mcp" }, idempotency_key: "e2e-1" },
  });
  assert.equal(started.isError, false, JSON.stringify(started));
  const id = started.structuredContent.saga_id;
  const saga = await until(`saga ${id} to complete`, async () => {
    const got = (await client.callTool({ name: "get_saga", arguments: { saga_id: id } })).structuredContent;
    return got.state === "completed" ? got : null;
  });
  assert.deepEqual(saga.steps[0].output, { text: "hello mcp" });

  const again = await client.callTool({
    name: "start_workflow", arguments: { workflow: "hello", idempotency_key: "e2e-1" } });
  assert.equal(again.structuredContent.saga_id, id);
  assert.equal(again.structuredContent.created, false);

  const bad = await client.callTool({
    name: "register_workflow",
    arguments: { definition: { name: "bad", version: 1, steps: [{ name: "s", action: "htp" }] } },
  });
  assert.equal(bad.isError, true);
  assert.match(bad.structuredContent.error.message, /steps\[0\]\.action: unknown action 'htp'/);

  const cancel = await client.callTool({ name: "cancel_saga", arguments: { saga_id: id } });
  assert.equal(cancel.isError, true);
  assert.match(cancel.structuredContent.error.message, /already completed/);
}

const dir = mkdtempSync(join(tmpdir(), "cde-e2e-"));
try {
  await check("stdio: the SDK client runs a saga end to end", async () => {
    const transport = new StdioClientTransport({
      command: binary,
      args: ["serve", "--stdio", "--data-dir", join(dir, "stdio"), "--workflows", examples],
      stderr: "pipe",
    });
    const client = new Client({ name: "cde-e2e", version: "1.0.0" });
    await client.connect(transport);
    await conversation(client);
    await client.close();
  });

  await check("http: the SDK client runs a saga end to end", async () => {
    const server = await serveHttp(binary, ["--data-dir", join(dir, "http"), "--workflows", examples]);
    try {
      const client = new Client({ name: "cde-e2e", version: "1.0.0" });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${server.base}/mcp`)));
      await conversation(client);
      await client.close();
    } finally {
      server.proc.kill("SIGTERM");
      await server.exited;
    }
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
finish("e2e");
