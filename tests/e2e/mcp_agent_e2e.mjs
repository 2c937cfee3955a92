// End-to-end: an agent that knows nothing about the server, only what its
// tools say, with the official MCP TypeScript SDK client against the real
// cde-orchestrator binary, over stdio and over HTTP. It lists the tools,
// learns a workflow's input from list_workflows, runs the workflow through
// the workflow's own tool, hears tools/list_changed when a workflow is
// registered, and is told what to do about a parked saga. It builds a
// definition from register_workflow's schema, and uses the prompts.
//
//   node mcp_agent_e2e.mjs /path/to/cde-orchestrator
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import Ajv from "ajv";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { check, finish, serveHttp, until } from "./lib.mjs";

const binary = process.argv[2];
const examples = new URL("../../docs/examples", import.meta.url).pathname;

async function conversation(client, transport) {
  let listChanged = 0;
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => { listChanged++; });
  assert.equal(client.getServerCapabilities().tools.listChanged, true);

  // Every workflow of --workflows is a tool, whose input schema is the
  // workflow's.
  const { tools } = await client.listTools();
  const run = tools.find((t) => t.name === "run_retry-park-demo");
  assert.ok(run, `no run_retry-park-demo among ${tools.map((t) => t.name)}`);
  assert.deepEqual(run.inputSchema.required, ["pause_ms", "final_failures"]);
  assert.equal(run.annotations.openWorldHint, true);
  const start = tools.find((t) => t.name === "start_workflow");
  assert.equal(start.annotations.idempotentHint, false);
  assert.equal(start.annotations.openWorldHint, true);

  // list_workflows shows an input that works; the agent runs it.
  const listed = (await client.callTool({ name: "list_workflows", arguments: {} })).structuredContent;
  const demo = listed.workflows.find((w) => w.name === "retry-park-demo");
  assert.deepEqual(demo.input_schema, run.inputSchema);
  for (const w of listed.workflows) {
    assert.equal(typeof w.example_input, "object", JSON.stringify(w));
    assert.notEqual(w.example_input, null, `${w.name} shows no example input`);
  }
  const input = { ...demo.example_input, pause_ms: 10 };
  const done = await client.callTool({ name: run.name, arguments: input });
  assert.equal(done.isError, false, JSON.stringify(done));
  assert.equal(done.structuredContent.state, "completed", JSON.stringify(done.structuredContent));
  assert.match(done.structuredContent.saga.next, /^Completed/);

  // A parked saga says which tool runs it again.
  const parked = await client.callTool({ name: run.name,
                                         arguments: { pause_ms: 10, final_failures: 5 } });
  assert.equal(parked.structuredContent.state, "parked", JSON.stringify(parked.structuredContent));
  assert.match(parked.structuredContent.saga.next,
               /step 'final-check' failed with check_failed: .*replay_saga/);

  // register_workflow's schema is the whole definition language: the agent
  // builds a definition from it, checks it with a JSON Schema validator,
  // and the server takes it. A definition the schema refuses, the server
  // refuses too, saying where.
  const language = tools.find((t) => t.name === "register_workflow").inputSchema.properties.definition;
  assert.deepEqual(language.required, ["name", "version", "steps"]);
  const stepSchema = language.properties.steps.items;
  assert.ok(stepSchema.properties.action.enum.includes("echo"), JSON.stringify(stepSchema.properties.action));
  const valid = new Ajv({ strict: true }).compile(language);
  const definition = {
    name: `agent-${transport}`, version: language.properties.version.minimum,
    description: "Says hello.",
    input_schema: { type: "object", required: ["who"], properties: { who: { type: "string" } } },
    examples: [{ who: "world" }],
    steps: [{ name: "greet", action: "echo", params: { hello: "${input.who}" } }] };
  assert.ok(valid(definition), JSON.stringify(valid.errors));
  const guessed = { ...definition, steps: [{ name: "greet", action: { type: "noop" } }] };
  assert.equal(valid(guessed), false);
  const refused = await client.callTool({ name: "register_workflow", arguments: { definition: guessed } });
  assert.equal(refused.isError, true);
  assert.match(refused.content[0].text, /steps\[0\]\.action: must be a string/);

  // A new workflow is announced, and is then a tool.
  const before = listChanged;
  const reg = await client.callTool({ name: "register_workflow", arguments: { definition } });
  assert.equal(reg.isError, false, JSON.stringify(reg));
  await until("tools/list_changed", async () => listChanged > before);
  const after = (await client.listTools()).tools;
  const mine = after.find((t) => t.name === `run_agent-${transport}`);
  assert.ok(mine, "the new workflow is no tool");
  assert.match(mine.description, /^Says hello\./);
  const greeted = await client.callTool({ name: mine.name, arguments: { who: "agent" } });
  assert.deepEqual(greeted.structuredContent.saga.steps[0].output, { hello: "agent" });

  // Prompts: the parked saga diagnosed, with its id completed from a
  // prefix; the dead-letter queue; a workflow written from the language.
  const { prompts } = await client.listPrompts();
  assert.deepEqual(prompts.map((p) => p.name).sort(),
                   ["diagnose_saga", "operate_dlq", "write_workflow"]);
  const parkedId = parked.structuredContent.saga_id;
  const completed = await client.complete({
    ref: { type: "ref/prompt", name: "diagnose_saga" },
    argument: { name: "saga_id", value: parkedId.slice(0, 20) } });
  assert.ok(completed.completion.values.includes(parkedId), JSON.stringify(completed));
  const diagnosis = await client.getPrompt({ name: "diagnose_saga", arguments: { saga_id: parkedId } });
  const [saga, log, ask] = diagnosis.messages;
  assert.equal(saga.content.resource.uri, `saga://${parkedId}`);
  assert.equal(JSON.parse(saga.content.resource.text).state, "parked");
  assert.equal(log.content.resource.uri, `saga://${parkedId}/log`);
  assert.match(ask.content.text, /replay_saga/);
  const dlq = await client.getPrompt({ name: "operate_dlq", arguments: { workflow: "retry-park-demo" } });
  assert.match(dlq.messages[0].content.text, new RegExp(parkedId));
  const write = await client.getPrompt({ name: "write_workflow", arguments: { task: "ping a service" } });
  const text = write.messages[0].content.text;
  assert.deepEqual(JSON.parse(text.slice(text.indexOf(":\n") + 2)), language);
  assert.match(write.messages.at(-1).content.text, /ping a service/);
}

const transports = {
  async stdio(dir) {
    const client = new Client({ name: "cde-agent-e2e", version: "1.0.0" });
    await client.connect(new StdioClientTransport({
      command: binary,
      args: ["serve", "--stdio", "--data-dir", join(dir, "stdio"), "--workflows", examples],
      stderr: "pipe",
    }));
    return { client, async close() { await client.close(); } };
  },
  async http(dir) {
    const server = await serveHttp(binary, ["--data-dir", join(dir, "http"), "--workflows", examples]);
    const client = new Client({ name: "cde-agent-e2e", version: "1.0.0" });
    const stop = async () => {
      server.proc.kill("SIGTERM");
      await server.exited;
    };
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL(`${server.base}/mcp`)));
    } catch (e) {
      await stop();
      throw e;
    }
    return { client, async close() { await client.close(); await stop(); } };
  },
};

const dir = mkdtempSync(join(tmpdir(), "cde-agent-e2e-"));
try {
  for (const [name, connect] of Object.entries(transports)) {
    await check(`${name}: an agent finds, learns and runs a workflow from the tools alone`,
                async () => {
      const { client, close } = await connect(dir);
      try {
        await conversation(client, name);
      } finally {
        await close();
      }
    });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
finish("e2e");
