// End-to-end: named bearer tokens with scopes, with the official MCP
// TypeScript SDK client against the real cde-orchestrator binary over HTTP,
// and plain HTTP for /metrics and /admin. Each scope is refused where it is
// missing (an isError result with code "forbidden" naming the scope; 403 on
// plain HTTP) and allowed where it is granted; a session belongs to the
// token that opened it.
//
//   node mcp_scopes_e2e.mjs /path/to/cde-orchestrator
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { check, finish, serveHttp, until } from "./lib.mjs";

const binary = process.argv[2];
const sha256 = (s) => createHash("sha256").update(s).digest("hex");

// The secrets; the server is given only their hashes.
const secrets = { reader: "r-secret-1", runner: "u-secret-2", author: "d-secret-3", admin: "a-secret-4" };
const tokens = [
  { name: "reader", sha256: sha256(secrets.reader), scopes: ["read"] },
  { name: "runner", sha256: sha256(secrets.runner), scopes: ["read", "run"] },
  { name: "author", sha256: sha256(secrets.author), scopes: ["define"] },
  { name: "admin", sha256: sha256(secrets.admin), scopes: ["read", "run", "define", "admin"] },
];

const dir = mkdtempSync(join(tmpdir(), "cde-scopes-e2e-"));
const server = await serveHttp(binary, ["--data-dir", join(dir, "data")],
                               { env: { ...process.env, CDE_AUTH_TOKENS: JSON.stringify(tokens) } });
let stderr = "";
server.proc.stderr.on("data", (d) => { stderr += d; });
const auth = (who) => ({ Authorization: `Bearer ${secrets[who]}` });

async function connect(who) {
  const client = new Client({ name: `cde-scopes-${who}`, version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${server.base}/mcp`),
                                                         { requestInit: { headers: auth(who) } }));
  return client;
}

async function tool(client, name, args) {
  return client.callTool({ name, arguments: args });
}

function assertForbidden(r, scope, what) {
  assert.equal(r.isError, true, JSON.stringify(r));
  assert.equal(r.structuredContent.error.code, "forbidden", JSON.stringify(r));
  assert.equal(r.structuredContent.error.scope, scope);
  assert.match(r.structuredContent.error.message, new RegExp(`lacks the scope '${scope}' that ${what} needs`));
}

const definition = { name: "e2e-echo", version: 1, steps: [{ name: "say", action: "echo", params: { hi: 1 } }] };
const clients = [];
try {
  await check("without a token, or with a wrong one, nothing connects", async () => {
    await assert.rejects(connect("nobody"), /401|authentication|token/i);
    const r = await fetch(`${server.base}/mcp`, { method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream",
                 Authorization: "Bearer r-secret-1x" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }) });
    assert.equal(r.status, 401);
  });

  await check("define: only a token with it registers a workflow", async () => {
    const reader = await connect("reader");
    clients.push(reader);
    assertForbidden(await tool(reader, "register_workflow", { definition }), "define", "register_workflow");
    const author = await connect("author");
    clients.push(author);
    const r = await tool(author, "register_workflow", { definition });
    assert.equal(r.isError, false, JSON.stringify(r));
    // define alone reads nothing.
    assertForbidden(await tool(author, "list_workflows", {}), "read", "list_workflows");
  });

  let sagaId;
  await check("run: only a token with it starts or cancels a saga", async () => {
    const [reader] = clients;
    assertForbidden(await tool(reader, "start_workflow", { workflow: "e2e-echo" }), "run", "start_workflow");
    const runner = await connect("runner");
    clients.push(runner);
    const started = await tool(runner, "start_workflow", { workflow: "e2e-echo", wait_ms: 30000 });
    assert.equal(started.isError, false, JSON.stringify(started));
    assert.equal(started.structuredContent.state, "completed");
    sagaId = started.structuredContent.saga_id;
    // read: the reader sees what the runner did.
    const saga = await tool(reader, "get_saga", { saga_id: sagaId });
    assert.equal(saga.isError, false, JSON.stringify(saga));
    assert.deepEqual(saga.structuredContent.steps[0].output, { hi: 1 });
    assert.equal(saga.structuredContent.started_by, "runner");
    assertForbidden(await tool(reader, "cancel_saga", { saga_id: sagaId }), "run", "cancel_saga");
  });

  await check("admin: only a token with it replays", async () => {
    const runner = clients[2];
    assertForbidden(await tool(runner, "replay_saga", { saga_id: sagaId }), "admin", "replay_saga");
    const admin = await connect("admin");
    clients.push(admin);
    const r = await tool(admin, "replay_saga", { saga_id: sagaId });
    // Allowed, and refused for what the saga is (completed, not parked).
    assert.equal(r.isError, true, JSON.stringify(r));
    assert.notEqual(r.structuredContent.error.code, "forbidden", JSON.stringify(r));
  });

  await check("resources need read", async () => {
    const author = clients[1];
    await assert.rejects(author.listResources(), /-32003|lacks the scope 'read'/);
    const reader = clients[0];
    const listed = await reader.listResources();
    assert.ok(Array.isArray(listed.resources));
  });

  await check("a session belongs to the token that opened it", async () => {
    const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
    const init = await fetch(`${server.base}/mcp`, { method: "POST", headers: { ...headers, ...auth("runner") },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize",
                             params: { protocolVersion: "2025-06-18", capabilities: {},
                                       clientInfo: { name: "raw", version: "1" } } }) });
    assert.equal(init.status, 200);
    const sid = init.headers.get("mcp-session-id");
    await init.text();
    const call = (who) => fetch(`${server.base}/mcp`, { method: "POST",
      headers: { ...headers, ...auth(who), "mcp-session-id": sid },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "ping" }) });
    const other = await call("admin");
    assert.equal(other.status, 404, await other.text());
    const own = await call("runner");
    assert.equal(own.status, 200, await own.text());
  });

  await check("plain HTTP: /metrics needs read, /admin needs admin", async () => {
    assert.equal((await fetch(`${server.base}/metrics`)).status, 401);
    const forbidden = await fetch(`${server.base}/metrics`, { headers: auth("author") });
    assert.equal(forbidden.status, 403);
    assert.equal((await forbidden.json()).scope, "read");
    const metrics = await fetch(`${server.base}/metrics`, { headers: auth("reader") });
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /cde_sagas_started_total/);
    const purge = (who) => fetch(`${server.base}/admin/dlq/purge`, { method: "POST",
      headers: { "content-type": "application/json", ...auth(who) }, body: JSON.stringify({ saga_id: sagaId }) });
    const refused = await purge("runner");
    assert.equal(refused.status, 403);
    const body = await refused.json();
    assert.equal(body.code, "forbidden");
    assert.equal(body.scope, "admin");
    const allowed = await purge("admin");
    assert.equal(allowed.status, 400, "a completed saga is not in the DLQ");  // past the scope check
    // Each change was logged with its caller (the log is written by a
    // background thread: wait for the lines).
    const expected = [["runner", '"tool":"start_workflow"'], ["author", '"tool":"register_workflow"'],
                      ["admin", '"tool":"replay_saga"'], ["admin", '"endpoint":"/admin/dlq/purge"']];
    const logged = () => {
      const audit = stderr.split("\n").filter((l) => l.includes('"audit"'));
      return expected.every(([caller, what]) =>
        audit.some((l) => l.includes(`"caller":"${caller}"`) && l.includes(what)));
    };
    await until("the audit lines of every change", async () => logged());
    assert.ok(!stderr.includes(secrets.admin) && !stderr.includes(secrets.runner), "a token in the log");
    // The health probes stay open for orchestrators.
    assert.equal((await fetch(`${server.base}/health/liveness`)).status, 200);
  });
} finally {
  for (const c of clients) await c.close();
  server.proc.kill("SIGTERM");
  await server.exited;
  rmSync(dir, { recursive: true, force: true });
}
finish("scopes e2e");
