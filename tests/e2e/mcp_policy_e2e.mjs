// End-to-end: the http destination policy, with the official MCP
// TypeScript SDK client against the real cde-orchestrator binary, over
// stdio and over HTTP. What a client's definition may not reach, each
// refused with a clear error and without a request reaching the target:
// the metadata address and loopback (at registration), a name that
// resolves to loopback (when the attempt connects), and loopback through
// a redirect (redirects are not followed). An operator's definition may
// reach loopback, but not the server's own listener. And the size limits:
// a definition and an input over theirs are refused naming the setting, an
// output over its limit fails the step with kind `limit`.
//
//   node mcp_policy_e2e.mjs /path/to/cde-orchestrator
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createServer } from "node:http";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { check, finish, serveHttp } from "./lib.mjs";

const binary = process.argv[2];

// A server on `host` that records what it is asked; `routes` maps a path
// to [status, headers, body].
async function target(host, routes) {
  const seen = [];
  const server = createServer((req, res) => {
    seen.push(req.url);
    const [status, headers, body] = routes[req.url] || [404, {}, "not found"];
    res.writeHead(status, headers);
    res.end(body);
  });
  await new Promise((r) => server.listen(0, host, r));
  return { seen, port: server.address().port, close: () => new Promise((r) => server.close(r)) };
}

const inside = await target("127.0.0.1", { "/secret": [200, { "content-type": "application/json" }, '{"secret": 42}'] });
// The one address the configuration allows clients, which redirects inside.
const hop = await target("127.0.0.2", {
  "/hop": [302, { location: `http://127.0.0.1:${inside.port}/secret` }, ""],
  "/fine": [200, { "content-type": "application/json" }, '{"fine": true}'],
  "/big": [200, { "content-type": "application/json" }, JSON.stringify({ blob: "b".repeat(3000) })],
});
const env = {
  ...process.env,
  CDE_ACTIONS_HTTP_ALLOW: '["127.0.0.2"]',
  CDE_LIMITS_DEFINITION_BYTES: "2048",
  CDE_LIMITS_INPUT_BYTES: "4096",
  CDE_LIMITS_OUTPUT_BYTES: "2048",
};

// An operator's workflow (from --workflows) that fetches the URL it is given.
const dir = mkdtempSync(join(tmpdir(), "cde-policy-e2e-"));
const workflows = join(dir, "workflows");
mkdirSync(workflows);
writeFileSync(join(workflows, "op-fetch.json"), JSON.stringify({
  name: "op-fetch", version: 1,
  steps: [{ name: "get", action: "http", params: { url: "${input.url}" } }] }));

function fetchDefinition(name, url) {
  return { name, version: 1, steps: [{ name: "get", action: "http", params: { url } }] };
}

async function tool(client, name, args) {
  return client.callTool({ name, arguments: args });
}

// Starts `workflow` with `input`, waits for the end, returns the saga.
async function run(client, workflow, input) {
  const r = await tool(client, "start_workflow", { workflow, input, wait_ms: 30000 });
  assert.equal(r.isError, false, JSON.stringify(r));
  assert.notEqual(r.structuredContent.state, "running", JSON.stringify(r.structuredContent));
  return r.structuredContent.saga;
}

async function conversation(client, transport, ownBase) {
  const refused = [
    ["http://169.254.169.254/latest/meta-data/iam/", /steps\[0\]\.params\.url: address 169\.254\.169\.254 is link-local/],
    [`http://127.0.0.1:${inside.port}/secret`, /steps\[0\]\.params\.url: address 127\.0\.0\.1 is loopback, which definitions registered by clients may not reach/],
    [`http://[::ffff:127.0.0.1]:${inside.port}/secret`, /address 127\.0\.0\.1 is loopback/],
  ];
  for (const [i, [url, why]] of refused.entries()) {
    const name = `e2e-refused-${i}-${transport}`;
    const r = await tool(client, "register_workflow", { definition: fetchDefinition(name, url) });
    assert.equal(r.isError, true, JSON.stringify(r));
    assert.match(r.structuredContent.error.message, why);
    const names = (await tool(client, "list_workflows", {})).structuredContent.workflows.map((w) => w.name);
    assert.ok(!names.includes(name), JSON.stringify(names));
  }

  const templated = `e2e-fetch-${transport}`;
  const reg = await tool(client, "register_workflow",
                         { definition: fetchDefinition(templated, "${input.url}") });
  assert.equal(reg.isError, false, JSON.stringify(reg));

  // A name that resolves to loopback: refused when the attempt connects.
  const viaName = await run(client, templated, { url: `http://localhost:${inside.port}/secret` });
  assert.equal(viaName.steps[0].error.kind, "policy", JSON.stringify(viaName));
  assert.match(viaName.steps[0].error.message, /refused by the action policy: address .* is loopback/);
  assert.equal(viaName.steps[0].attempts, 1, "a policy refusal is not retried");

  // Through a redirect from an allowed address: not followed.
  const viaRedirect = await run(client, templated, { url: `http://127.0.0.2:${hop.port}/hop` });
  assert.equal(viaRedirect.steps[0].error.kind, "http_302", JSON.stringify(viaRedirect));
  assert.match(viaRedirect.steps[0].error.message,
               new RegExp(`redirects are not followed; Location: http://127\\.0\\.0\\.1:${inside.port}/secret`));

  // The allowed address itself works.
  const fine = await run(client, templated, { url: `http://127.0.0.2:${hop.port}/fine` });
  assert.equal(fine.state, "completed", JSON.stringify(fine));
  assert.deepEqual(fine.steps[0].output, { fine: true });

  // Sizes: a definition and an input over their limits are refused, an
  // output over its limit fails the step (kind limit, not retried).
  const bloated = fetchDefinition(`e2e-bloated-${transport}`, "${input.url}");
  bloated.description = "d".repeat(3000);
  const tooBig = await tool(client, "register_workflow", { definition: bloated });
  assert.equal(tooBig.isError, true, JSON.stringify(tooBig));
  assert.match(tooBig.structuredContent.error.message,
               /^the definition is \d+ bytes of JSON, more than limits\.definition_bytes allows \(2048\)$/);
  const bigInput = await tool(client, "start_workflow",
                              { workflow: templated, input: { url: "x".repeat(5000) } });
  assert.equal(bigInput.isError, true, JSON.stringify(bigInput));
  assert.match(bigInput.structuredContent.error.message,
               /^input is 5010 bytes of JSON, more than limits\.input_bytes allows \(4096\)$/);
  const bigOutput = await run(client, templated, { url: `http://127.0.0.2:${hop.port}/big` });
  assert.equal(bigOutput.state, "compensated", JSON.stringify(bigOutput));
  assert.equal(bigOutput.steps[0].error.kind, "limit");
  assert.match(bigOutput.steps[0].error.message,
               /^the output is 3011 bytes of JSON, more than limits\.output_bytes allows \(2048\)$/);
  assert.equal(bigOutput.steps[0].attempts, 1);

  // An operator's workflow reaches loopback, but not this server's API.
  const op = await run(client, "op-fetch", { url: `http://127.0.0.1:${inside.port}/secret` });
  assert.equal(op.state, "completed", JSON.stringify(op));
  assert.deepEqual(op.steps[0].output, { secret: 42 });
  if (ownBase) {
    const own = await run(client, "op-fetch", { url: `${ownBase}/metrics` });
    assert.equal(own.steps[0].error.kind, "policy", JSON.stringify(own));
    assert.match(own.steps[0].error.message, /this server's own listener/);
  }
}

try {
  await check("stdio: the http destination policy", async () => {
    const client = new Client({ name: "cde-policy-e2e", version: "1.0.0" });
    await client.connect(new StdioClientTransport({
      command: binary,
      args: ["serve", "--stdio", "--data-dir", join(dir, "stdio"), "--workflows", workflows],
      env, stderr: "pipe" }));
    try {
      await conversation(client, "stdio", null);
    } finally {
      await client.close();
    }
  });
  await check("http: the http destination policy, and the server's own listener", async () => {
    const server = await serveHttp(binary, ["--data-dir", join(dir, "http"), "--workflows", workflows], { env });
    const client = new Client({ name: "cde-policy-e2e", version: "1.0.0" });
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL(`${server.base}/mcp`)));
      await conversation(client, "http", server.base);
    } finally {
      await client.close();
      server.proc.kill("SIGTERM");
      await server.exited;
    }
  });
  // Nothing the policy refused reached the inside server: only the
  // operator's two fetches did.
  await check("the refused requests never reached the target", async () => {
    assert.deepEqual(inside.seen, ["/secret", "/secret"]);
  });
} finally {
  await inside.close();
  await hop.close();
  rmSync(dir, { recursive: true, force: true });
}
finish("policy e2e");
