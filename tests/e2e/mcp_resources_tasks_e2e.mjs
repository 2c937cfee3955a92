// End-to-end: MCP resources and tasks with the official MCP TypeScript SDK
// client against the real cde-orchestrator binary, over every transport in
// `transports` (stdio and Streamable HTTP), including a server restart that
// a task survives.
//
//   node mcp_resources_tasks_e2e.mjs /path/to/cde-orchestrator
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CallToolResultSchema,
  CreateTaskResultSchema,
  ResourceUpdatedNotificationSchema,
  TaskStatusNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { check, finish, serveHttp, until } from "./lib.mjs";

const binary = process.argv[2];

// A connected client plus what it was notified of. `connect` starts a
// server (or reuses the one of `dataDir`) and returns {client, stop}.
function recorder(client) {
  const notes = { updated: [], status: [] };
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    notes.updated.push(n.params);
  });
  client.setNotificationHandler(TaskStatusNotificationSchema, (n) => {
    notes.status.push(n.params);
  });
  return notes;
}

const newClient = () =>
  new Client({ name: "cde-e2e-res", version: "1.0.0" },
             { capabilities: { tasks: { list: {}, cancel: {} } } });

const transports = [
  {
    name: "stdio",
    notifications: true,
    // Starts (or restarts) a server over stdio on `dataDir`.
    async connect(dataDir) {
      const transport = new StdioClientTransport({
        command: binary,
        args: ["serve", "--stdio", "--data-dir", dataDir],
        stderr: "pipe",
      });
      const client = newClient();
      const notes = recorder(client);
      await client.connect(transport);
      return {
        client,
        notes,
        // SIGTERM, as an operator (or systemd) would stop the server.
        async stop() {
          const pid = transport.pid;
          const closed = new Promise((r) => { client.onclose = r; });
          process.kill(pid, "SIGTERM");
          await closed;
        },
        async close() { await client.close(); },
      };
    },
  },
  {
    name: "http",
    // Notifications (about no request) reach the client on the GET /mcp
    // SSE stream of Streamable HTTP; set false to skip those checks on a
    // server without it.
    notifications: true,
    async connect(dataDir) {
      const server = await serveHttp(binary, ["--data-dir", dataDir]);
      const client = newClient();
      const notes = recorder(client);
      await client.connect(new StreamableHTTPClientTransport(new URL(`${server.base}/mcp`)));
      const stop = async () => {
        server.proc.kill("SIGTERM");
        await server.exited;
        await client.close().catch(() => {});
      };
      return { client, notes, stop, close: stop };
    },
  },
];

const definitions = [
  { name: "quick", version: 1, description: "an echo, then a short nap", steps: [
    { name: "greet", action: "echo", params: { text: "hello ${input.who}" } },
    { name: "nap", action: "sleep", params: { duration_ms: 50 } } ] },
  { name: "steps", version: 1, steps: [
    { name: "a", action: "sleep", params: { duration_ms: 100 } },
    { name: "b", action: "sleep", params: { duration_ms: 100 } },
    { name: "c", action: "noop" } ] },
  { name: "trip", version: 1, steps: [
    { name: "book", action: "echo", params: { booked: true },
      compensate: { action: "echo", params: { unbooked: true } } },
    { name: "wait", action: "sleep", params: { duration_ms: 60000 } } ] },
  { name: "declined", version: 1, steps: [
    { name: "pay", action: "fail", params: { error: "card declined" }, retry: { max_attempts: 1 } } ] },
  { name: "restart", version: 1, steps: [
    { name: "nap", action: "sleep", params: { duration_ms: 1500 } },
    { name: "done", action: "echo", params: { ok: true } } ] },
];

async function register(client) {
  for (const definition of definitions) {
    const r = await client.callTool({ name: "register_workflow", arguments: { definition } });
    assert.equal(r.isError, false, JSON.stringify(r));
  }
}

async function startTask(client, workflow, input = {}) {
  const r = await client.request(
    { method: "tools/call",
      params: { name: "start_workflow", arguments: { workflow, input }, task: {} } },
    CreateTaskResultSchema);
  assert.equal(r.task.status, "working");
  assert.equal(r.task.ttl, null);
  assert.match(r.task.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  return r.task;
}

async function expectMcpError(promise, code, re) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.code, code, String(e));
    if (re) assert.match(e.message, re);
    return true;
  });
}

async function resourceChecks(t, client, notes) {
  const templates = (await client.listResourceTemplates()).resourceTemplates.map((x) => x.uriTemplate);
  assert.deepEqual(templates.sort(),
                   ["saga://{saga_id}", "saga://{saga_id}/log", "workflow://{name}/{version}"]);

  const started = await client.callTool({ name: "start_workflow",
                                          arguments: { workflow: "quick", input: { who: "res" } } });
  const id = started.structuredContent.saga_id;
  // Every page, following nextCursor.
  const all = [];
  let cursor;
  do {
    const page = await client.listResources(cursor ? { cursor } : {});
    all.push(...page.resources);
    cursor = page.nextCursor;
  } while (cursor);
  const uris = all.map((r) => r.uri);
  for (const d of definitions) assert.ok(uris.includes(`workflow://${d.name}/1`), d.name);
  assert.ok(uris.includes(`saga://${id}`));
  assert.ok(all.every((r) => r.mimeType === "application/json" && r.name));

  const wf = await client.readResource({ uri: "workflow://quick/1" });
  assert.deepEqual(JSON.parse(wf.contents[0].text), definitions[0]);
  await until("the saga to complete", async () => {
    const r = await client.readResource({ uri: `saga://${id}` });
    return JSON.parse(r.contents[0].text).state === "completed";
  });
  const saga = JSON.parse((await client.readResource({ uri: `saga://${id}` })).contents[0].text);
  assert.deepEqual(saga.steps[0].output, { text: "hello res" });
  const log = JSON.parse((await client.readResource({ uri: `saga://${id}/log` })).contents[0].text);
  assert.equal(log.events[0].type, "saga_started");
  assert.equal(log.events.at(-1).type, "saga_completed");

  await expectMcpError(client.readResource({ uri: "saga://01ARZ3NDEKTSV4RRFFQ69G5FAV" }), -32002,
                       /Resource not found/);
  await expectMcpError(client.readResource({ uri: "workflow://quick/9" }), -32002);
  await expectMcpError(client.readResource({ uri: "saga://nope" }), -32602, /params\.uri/);

  // Subscriptions: an update after each committed change of the saga. The
  // saga sleeps for a minute until cancelled, so its changes come after
  // the subscription however slow the machine.
  const s = await client.callTool({ name: "start_workflow", arguments: { workflow: "trip" } });
  const sid = s.structuredContent.saga_id;
  await client.subscribeResource({ uri: `saga://${sid}` });
  await client.subscribeResource({ uri: "workflow://trip/1" });  // immutable: never fires
  await expectMcpError(client.subscribeResource({ uri: "saga://01ARZ3NDEKTSV4RRFFQ69G5FAV" }), -32002);
  const cancel = await client.callTool({ name: "cancel_saga", arguments: { saga_id: sid } });
  assert.equal(cancel.isError, false, JSON.stringify(cancel));
  await until("saga 'trip' to end cancelled", async () =>
    JSON.parse((await client.readResource({ uri: `saga://${sid}` })).contents[0].text).state === "cancelled");
  if (t.notifications) {
    await until("resources/updated", () => notes.updated.some((n) => n.uri === `saga://${sid}`));
    assert.ok(notes.updated.every((n) => n.uri === `saga://${sid}`), JSON.stringify(notes.updated));
  }
  await client.unsubscribeResource({ uri: `saga://${sid}` });
  await client.unsubscribeResource({ uri: "workflow://trip/1" });
}

async function taskChecks(t, client, notes) {
  const { tools } = await client.listTools();  // caches taskSupport for the SDK
  assert.equal(tools.find((x) => x.name === "start_workflow").execution.taskSupport, "optional");

  // A task-augmented start polled with tasks/get, then its result.
  const task = await startTask(client, "quick", { who: "task" });
  const done = await until("the task to complete", async () => {
    const got = await client.experimental.tasks.getTask(task.taskId);
    return got.status === "completed" ? got : null;
  });
  assert.equal(done.taskId, task.taskId);
  const result = await client.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema);
  assert.equal(result.isError, false);
  assert.equal(result.structuredContent.saga_id, task.taskId);
  assert.equal(result.structuredContent.state, "completed");
  assert.deepEqual(result.structuredContent.saga.steps[0].output, { text: "hello task" });
  assert.deepEqual(result._meta["io.modelcontextprotocol/related-task"], { taskId: task.taskId });
  if (t.notifications) {
    await until("notifications/tasks/status", () =>
      notes.status.some((n) => n.taskId === task.taskId && n.status === "completed"));
  }

  // The SDK's own task flow: callToolStream creates, polls and fetches.
  const seen = [];
  for await (const m of client.experimental.tasks.callToolStream(
    { name: "start_workflow", arguments: { workflow: "quick", input: { who: "stream" } } })) {
    seen.push(m);
  }
  assert.equal(seen[0].type, "taskCreated", JSON.stringify(seen));
  assert.equal(seen.at(-1).type, "result", JSON.stringify(seen.at(-1)));
  assert.equal(seen.at(-1).result.structuredContent.state, "completed");

  // A failing saga is a failed task whose result is a tool error.
  const bad = await startTask(client, "declined");
  const failed = await client.experimental.tasks.getTaskResult(bad.taskId, CallToolResultSchema);
  assert.equal(failed.isError, true);
  assert.match(failed.structuredContent.error.message, /card declined/);
  assert.equal((await client.experimental.tasks.getTask(bad.taskId)).status, "failed");

  // Cancel: the saga stops and compensates the step it completed.
  const trip = await startTask(client, "trip");
  await until("the trip to reach its sleep", async () => {
    const r = await client.callTool({ name: "get_saga", arguments: { saga_id: trip.taskId } });
    return r.structuredContent.steps[0].status === "succeeded";
  });
  const cancelled = await client.experimental.tasks.cancelTask(trip.taskId);
  assert.equal(cancelled.status, "cancelled");
  const after = await client.experimental.tasks.getTaskResult(trip.taskId, CallToolResultSchema);
  assert.equal(after.structuredContent.state, "cancelled");
  assert.equal(after.structuredContent.saga.steps[0].status, "succeeded");
  assert.equal(after.structuredContent.saga.steps[0].compensation, "succeeded");
  await expectMcpError(client.experimental.tasks.cancelTask(trip.taskId), -32602,
                       /already in terminal status 'cancelled'/);
  if (t.notifications) {
    await until("the cancelled status", () =>
      notes.status.some((n) => n.taskId === trip.taskId && n.status === "cancelled"));
  }

  // tasks/list: every saga, newest first.
  const ids = [];
  let cursor;
  do {
    const page = await client.experimental.tasks.listTasks(cursor);
    ids.push(...page.tasks.map((x) => x.taskId));
    cursor = page.nextCursor;
  } while (cursor);
  for (const x of [task.taskId, bad.taskId, trip.taskId]) assert.ok(ids.includes(x), x);
  assert.ok(ids.indexOf(trip.taskId) < ids.indexOf(task.taskId), "newest first");

  await expectMcpError(client.experimental.tasks.getTask("nope"), -32602, /Task not found/);
  await expectMcpError(
    client.request({ method: "tools/call",
                     params: { name: "get_saga", arguments: { saga_id: task.taskId }, task: {} } },
                   CreateTaskResultSchema),
    -32601);
}

// A task outlives the server: started, SIGTERM, restarted on the same
// data dir, then found by tasks/get and tasks/result.
async function restartCheck(t, dataDir) {
  let conn = await t.connect(dataDir);
  let task;
  try {
    task = await startTask(conn.client, "restart");
  } finally {
    await conn.stop();
  }
  conn = await t.connect(dataDir);
  try {
    const got = await conn.client.experimental.tasks.getTask(task.taskId);
    assert.equal(got.taskId, task.taskId);
    assert.ok(["working", "completed"].includes(got.status), got.status);
    const result = await conn.client.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema);
    assert.equal(result.structuredContent.state, "completed");
    assert.deepEqual(result.structuredContent.saga.steps[1].output, { ok: true });
    const listed = await conn.client.experimental.tasks.listTasks();
    assert.equal(listed.tasks[0].taskId, task.taskId);
  } finally {
    await conn.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), "cde-e2e-res-"));
try {
  for (const t of transports) {
    const dataDir = join(dir, t.name);
    await check(`${t.name}: resources and tasks with the SDK client`, async () => {
      const conn = await t.connect(dataDir);
      try {
        await register(conn.client);
        await resourceChecks(t, conn.client, conn.notes);
        await taskChecks(t, conn.client, conn.notes);
      } finally {
        await conn.close();
      }
    });
    await check(`${t.name}: a task survives a server restart`, () => restartCheck(t, dataDir));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
finish("e2e");
