// End-to-end: inbound rate limits (-32029) and correlation / trace ids, with
// the official MCP TypeScript SDK client against the real cde-orchestrator
// binary, over stdio (ids in params._meta) and Streamable HTTP (ids in the
// X-Correlation-ID and traceparent headers).
//
//   node mcp_limits_trace_e2e.mjs /path/to/cde-orchestrator
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { check, finish, serveHttp } from "./lib.mjs";

const binary = process.argv[2];
const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
// Six requests at once, then one per 1000 s: enough for the conversation,
// and the seventh is refused.
const limits = { CDE_LIMITS_INBOUND_RATE_PER_SEC: "0.000001", CDE_LIMITS_INBOUND_BURST: "6" };
const definition = { name: "e2e-one", version: 1, steps: [{ name: "a", action: "noop" }] };

async function tool(client, name, args, meta) {
  const params = { name, arguments: args };
  if (meta) params._meta = meta;
  return client.callTool(params);
}

// Registers, starts (with `meta`), reads the saga back, then calls until the
// limit refuses a call. Returns the saga.
async function conversation(client, meta) {
  const reg = await tool(client, "register_workflow", { definition });   // 1
  assert.equal(reg.isError, false, JSON.stringify(reg));
  const started = await tool(client, "start_workflow", { workflow: "e2e-one" }, meta);  // 2
  assert.equal(started.isError, false, JSON.stringify(started));
  const saga = (await tool(client, "get_saga",
                           { saga_id: started.structuredContent.saga_id })).structuredContent;  // 3
  let refused;
  for (let i = 0; i < 10 && !refused; i++) {
    try {
      await client.listTools();
    } catch (e) {
      refused = e;
    }
  }
  assert.ok(refused, "no call was refused");
  assert.equal(refused.code, -32029, String(refused));
  assert.ok(refused.data.retry_after_ms > 990000000, JSON.stringify(refused.data));
  await client.ping();  // never limited
  return saga;
}

const dir = mkdtempSync(join(tmpdir(), "cde-limits-e2e-"));
try {
  await check("stdio: _meta ids reach the saga; the limit answers -32029", async () => {
    const client = new Client({ name: "cde-limits-e2e", version: "1.0.0" });
    await client.connect(new StdioClientTransport({
      command: binary,
      args: ["serve", "--stdio", "--data-dir", join(dir, "stdio")],
      env: { PATH: process.env.PATH, ...limits },
      stderr: "pipe",
    }));
    try {
      const saga = await conversation(client, { correlation_id: "order-4711", traceparent });
      assert.equal(saga.correlation_id, "order-4711");
      assert.equal(saga.trace_id, traceId);
    } finally {
      await client.close();
    }
  });

  await check("http: header ids reach the saga; the limit answers -32029", async () => {
    const server = await serveHttp(binary, ["--data-dir", join(dir, "http")],
                                   { env: { ...process.env, ...limits } });
    try {
      const client = new Client({ name: "cde-limits-e2e", version: "1.0.0" });
      await client.connect(new StreamableHTTPClientTransport(
          new URL(`${server.base}/mcp`),
          { requestInit: { headers: { "X-Correlation-ID": "hdr-42", traceparent } } }));
      try {
        const saga = await conversation(client, undefined);
        assert.equal(saga.correlation_id, "hdr-42");
        assert.equal(saga.trace_id, traceId);
      } finally {
        await client.close();
      }
    } finally {
      server.proc.kill("SIGTERM");
      await server.exited;
    }
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
finish("limits and trace e2e");
