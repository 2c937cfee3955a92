// End-to-end: the saga inspection tools, start_workflow's wait with progress
// notifications and cancellation, logging and completion, with the official
// MCP TypeScript SDK client against the real cde-orchestrator binary.
//
//   node mcp_tools_e2e.mjs /path/to/cde-orchestrator
//
// The same checks run once per transport in `transports`. A transport with
// `notifications: false` still runs every call but does not expect
// server-to-client notifications (progress, log messages).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { check, finish, serveHttp, until } from "./lib.mjs";

const binary = process.argv[2];
const examples = new URL("../../docs/examples", import.meta.url).pathname;

// Workflows of this test: quick steps, one that parks, one that takes a while.
const definitions = [
  { name: "e2e-three", version: 1, steps: [
    { name: "a", action: "echo", params: { n: 1 } },
    { name: "b", action: "sleep", params: { duration_ms: 500 } },
    { name: "c", action: "echo", params: { n: 3 } } ] },
  { name: "e2e-three", version: 2, steps: [{ name: "only", action: "noop" }] },
  { name: "e2e-parks", version: 1, on_failure: "park", steps: [
    { name: "boom", action: "fail", params: { error: "no luck", kind: "bad" },
      retry: { max_attempts: 1 } } ] },
  { name: "e2e-slow", version: 1, steps: [
    { name: "nap", action: "sleep", params: { duration_ms: 3000 } } ] },
];

async function tool(client, name, args, options) {
  return client.callTool({ name, arguments: args }, undefined, options);
}

async function awaitState(client, sagaId, state) {
  return until(`saga ${sagaId} to be ${state}`, async () => {
    const saga = (await tool(client, "get_saga", { saga_id: sagaId })).structuredContent;
    return saga.state === state ? saga : null;
  });
}

// How many sagas of `workflow` the server has.
async function countSagas(client, workflow) {
  let n = 0;
  let cursor;
  do {
    const page = (await tool(client, "list_sagas", { workflow, cursor })).structuredContent;
    n += page.sagas.length;
    cursor = page.next_cursor;
  } while (cursor);
  return n;
}

// Everything this test checks, on one connected client.
async function conversation(client, transport) {
  const logs = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));

  const { tools } = await client.listTools();
  for (const name of ["list_sagas", "get_saga_log", "list_dlq"]) {
    const t = tools.find((x) => x.name === name);
    assert.ok(t, `tools/list lacks ${name}`);
    assert.equal(t.annotations.readOnlyHint, true, name);
  }
  const start = tools.find((x) => x.name === "start_workflow");
  assert.equal(start.inputSchema.properties.wait_ms.maximum, 600000);
  await assert.rejects(client.listTools({ cursor: "page-2" }), /-32602|cursor/);

  for (const definition of definitions) {
    const r = await tool(client, "register_workflow", { definition });
    assert.equal(r.isError, false, JSON.stringify(r));
  }
  // Ours came from a client; the examples of --workflows, if loaded, from
  // the operator.
  const workflows = (await tool(client, "list_workflows", {})).structuredContent.workflows;
  for (const w of workflows) {
    assert.equal(w.origin, w.name.startsWith("e2e-") ? "client" : "operator", JSON.stringify(w));
  }

  // A client may not run a shell through an exec step (the default action
  // policy): refused, naming the step, and nothing is registered.
  const shell = await tool(client, "register_workflow", { definition: {
    name: `e2e-shell-${transport.name}`, version: 1,
    steps: [{ name: "id", action: "exec", params: { argv: ["/bin/sh", "-c", "id"] } }] } });
  assert.equal(shell.isError, true, JSON.stringify(shell));
  assert.match(shell.structuredContent.error.message,
               /steps\[0\]\.action: exec is not allowed in definitions registered by clients/);
  const after = (await tool(client, "list_workflows", {})).structuredContent.workflows.map((w) => w.name);
  assert.ok(!after.includes(`e2e-shell-${transport.name}`), JSON.stringify(after));

  // A wait with progress: one notification per step, increasing, then the
  // final saga in the result.
  const progress = [];
  const done = await tool(client, "start_workflow", { workflow: "e2e-three", version: 1, wait_ms: 10000 },
                          { onprogress: (p) => progress.push(p) });
  assert.equal(done.isError, false, JSON.stringify(done));
  assert.equal(done.structuredContent.state, "completed");
  assert.equal(done.structuredContent.created, true);
  assert.deepEqual(done.structuredContent.saga.steps[2].output, { n: 3 });
  if (transport.notifications) {
    // The server sends 1, 2, 3 and then the result (the unit tests pin that
    // down on the wire). The SDK client may drop the last ones: it runs
    // notification handlers a microtask later but handles a response at
    // once, dropping the call's progress handler, so every notification
    // read in the same chunk as the response is lost (typescript-sdk issue
    // #2580). On a busy machine that can be 2 and 3; the first one comes
    // half a second before the rest (step b sleeps) and always arrives.
    const values = progress.map((p) => p.progress);
    assert.ok(values.length >= 1, JSON.stringify(progress));
    assert.deepEqual(values, [1, 2, 3].slice(0, values.length), JSON.stringify(progress));
    assert.ok(progress.every((p) => p.total === 3));
    assert.equal(progress[0].message, "step 'a' succeeded");
  }
  const doneId = done.structuredContent.saga_id;

  // A wait that runs out: the saga goes on.
  const slow = await tool(client, "start_workflow", { workflow: "e2e-slow", wait_ms: 50 });
  assert.equal(slow.structuredContent.timed_out, true, JSON.stringify(slow));
  assert.equal(slow.structuredContent.state, "running");
  await awaitState(client, slow.structuredContent.saga_id, "completed");

  // A waiting call the client cancels (notifications/cancelled): the call
  // rejects, the saga still completes.
  const key = `e2e-cancel-${transport.name}`;
  const ac = new AbortController();
  const before = await countSagas(client, "e2e-slow");
  const cancelled = tool(client, "start_workflow", { workflow: "e2e-slow", idempotency_key: key, wait_ms: 60000 },
                         { signal: ac.signal });
  // Cancelled once the server has started the saga, while the call waits.
  await until("the server to start the saga", async () => (await countSagas(client, "e2e-slow")) > before);
  ac.abort("changed my mind");
  await assert.rejects(cancelled);
  const again = await tool(client, "start_workflow", { workflow: "e2e-slow", idempotency_key: key });
  assert.equal(again.structuredContent.created, false);
  await awaitState(client, again.structuredContent.saga_id, "completed");

  // Logging: info and above from now on; a parked saga is an error.
  await client.setLoggingLevel("info");
  const parked = await tool(client, "start_workflow", { workflow: "e2e-parks", wait_ms: 10000 });
  assert.equal(parked.structuredContent.state, "parked", JSON.stringify(parked));
  const parkedId = parked.structuredContent.saga_id;
  if (transport.notifications) {
    const error = await until("the saga_parked log message", () => logs.find((l) => l.data.event === "saga_parked"));
    assert.ok(error, JSON.stringify(logs));
    assert.equal(error.level, "error");
    assert.equal(error.logger, "cde.saga");
    assert.equal(error.data.saga_id, parkedId);
    assert.ok(logs.some((l) => l.level === "warning" && l.data.event === "step_failed"));
  }

  // list_sagas: newest first, filters, pages, errors.
  const listed = (await tool(client, "list_sagas", { limit: 2 })).structuredContent;
  assert.equal(listed.sagas.length, 2);
  assert.equal(listed.sagas[0].saga_id, parkedId);
  assert.equal(listed.sagas[0].current_step, "boom");
  assert.ok(listed.next_cursor);
  const next = (await tool(client, "list_sagas", { limit: 2, cursor: listed.next_cursor })).structuredContent;
  assert.ok(next.sagas.every((s) => !listed.sagas.some((t) => t.saga_id === s.saga_id)));
  const three = (await tool(client, "list_sagas", { workflow: "e2e-three", state: "completed" })).structuredContent;
  assert.deepEqual(three.sagas.map((s) => s.saga_id), [doneId]);
  const badState = await tool(client, "list_sagas", { state: "failed" });
  assert.equal(badState.isError, true);
  assert.equal(badState.structuredContent.error.code, "invalid_argument");
  assert.match(badState.structuredContent.error.message, /arguments\.state.*running, compensating/);
  const badCursor = await tool(client, "list_sagas", { cursor: "not-a-cursor" });
  assert.equal(badCursor.isError, true);
  assert.match(badCursor.structuredContent.error.message, /arguments\.cursor/);

  // get_saga_log
  const log = (await tool(client, "get_saga_log", { saga_id: doneId, limit: 2 })).structuredContent;
  assert.equal(log.saga_id, doneId);
  assert.deepEqual(log.events.map((e) => e.seq), [1, 2]);
  assert.equal(log.events[0].type, "saga_started");
  assert.equal(log.next_seq, 3);
  const rest = (await tool(client, "get_saga_log", { saga_id: doneId, from_seq: log.next_seq })).structuredContent;
  assert.equal(rest.events.at(-1).type, "saga_completed");
  assert.equal(rest.next_seq, undefined);
  const unknown = await tool(client, "get_saga_log", { saga_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV" });
  assert.equal(unknown.structuredContent.error.code, "not_found");

  // list_dlq
  const dlq = (await tool(client, "list_dlq", { workflow: "e2e-parks" })).structuredContent;
  assert.equal(dlq.entries.length, 1, JSON.stringify(dlq));
  assert.equal(dlq.entries[0].saga_id, parkedId);
  assert.equal(dlq.entries[0].reason, "step_failed");
  assert.equal(dlq.entries[0].step, "boom");
  assert.equal(dlq.entries[0].last_error, "bad: no luck");
  assert.equal(dlq.entries[0].attempts, 1);

  // DLQ round trip: replay_saga runs it again with a fresh budget; it fails
  // again and is back in the DLQ with its replay counted.
  const replayed = await tool(client, "replay_saga", { saga_id: parkedId });
  assert.equal(replayed.isError, false, JSON.stringify(replayed));
  assert.equal(replayed.structuredContent.saga_id, parkedId);
  const parkedAgain = await until("the replayed saga to park again", async () => {
    const dlq = (await tool(client, "list_dlq", { workflow: "e2e-parks" })).structuredContent;
    return dlq.entries.length === 1 && dlq.entries[0].replay_count === 1 ? dlq : null;
  });
  assert.equal(parkedAgain.entries[0].replay_count, 1, JSON.stringify(parkedAgain));
  const replayLog = (await tool(client, "get_saga_log", { saga_id: parkedId })).structuredContent;
  assert.ok(replayLog.events.some((e) => e.type === "replayed"), JSON.stringify(replayLog));
  const notParked = await tool(client, "replay_saga", { saga_id: doneId });
  assert.equal(notParked.isError, true);

  // completion/complete for the resource templates.
  const wf = { type: "ref/resource", uri: "workflow://{name}/{version}" };
  const names = await client.complete({ ref: wf, argument: { name: "name", value: "e2e-th" } });
  assert.deepEqual(names.completion.values, ["e2e-three"]);
  const versions = await client.complete({ ref: wf, argument: { name: "version", value: "" },
                                           context: { arguments: { name: "e2e-three" } } });
  assert.deepEqual(versions.completion.values, ["2", "1"]);
  const ids = await client.complete({ ref: { type: "ref/resource", uri: "saga://{saga_id}" },
                                      argument: { name: "saga_id", value: doneId.slice(0, 14).toLowerCase() } });
  assert.deepEqual(ids.completion.values, [doneId]);
  assert.equal(ids.completion.hasMore, false);
  await assert.rejects(client.complete({ ref: { type: "ref/resource", uri: "saga://{saga_id}" },
                                         argument: { name: "nope", value: "" } }), /-32602|nope/);
}

// The transports to run over. Over HTTP, notifications (progress, log
// messages) reach the client only through the SSE streams of Streamable
// HTTP (api/mcp_http.cc); CDE_E2E_HTTP_NOTIFICATIONS=0 runs the HTTP checks
// without expecting them, for a server that answers with plain JSON only.
const transports = [
  {
    name: "stdio",
    notifications: true,
    async connect(dir) {
      const transport = new StdioClientTransport({
        command: binary,
        args: ["serve", "--stdio", "--data-dir", join(dir, "stdio"), "--workflows", examples],
        stderr: "pipe",
      });
      const client = new Client({ name: "cde-tools-e2e", version: "1.0.0" });
      await client.connect(transport);
      return { client, async close() { await client.close(); } };
    },
  },
  {
    name: "http",
    notifications: process.env.CDE_E2E_HTTP_NOTIFICATIONS !== "0",
    async connect(dir) {
      const server = await serveHttp(binary, ["--data-dir", join(dir, "http"), "--workflows", examples]);
      const client = new Client({ name: "cde-tools-e2e", version: "1.0.0" });
      try {
        await client.connect(new StreamableHTTPClientTransport(new URL(`${server.base}/mcp`)));
      } catch (e) {
        server.proc.kill("SIGTERM");
        await server.exited;
        throw e;
      }
      return {
        client,
        async close() {
          await client.close();
          server.proc.kill("SIGTERM");
          await server.exited;
        },
      };
    },
  },
];

const dir = mkdtempSync(join(tmpdir(), "cde-tools-e2e-"));
try {
  for (const transport of transports) {
    await check(`${transport.name}: saga tools, waits, progress, cancellation, logging, completion`,
                async () => {
      const { client, close } = await transport.connect(dir);
      try {
        await conversation(client, transport);
      } finally {
        await close();
      }
    });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
finish("e2e");
