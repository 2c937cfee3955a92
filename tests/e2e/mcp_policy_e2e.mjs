// End-to-end: the http destination policy, with the official MCP
// TypeScript SDK client against the real cde-orchestrator binary, over
// stdio and over HTTP. What a client's definition may not reach, each
// refused with a clear error and without a request reaching the target:
// the metadata address and loopback (at registration), a name that
// resolves to loopback (when the attempt connects), and loopback through
// a redirect (redirects are not followed). An operator's definition may
// reach loopback, but not the server's own listener. And the size limits:
// a definition and an input over theirs are refused naming the setting, an
// output over its limit fails the step with kind `limit`. And secrets: an
// operator's step sends ${secret.NAME} in a header; the value reaches the
// target, while the saga, its log, the workflow resource, the server's log
// and every file of the store hold only the reference or "[secret]".
//
//   node mcp_policy_e2e.mjs /path/to/cde-orchestrator
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createServer } from "node:http";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
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
    const route = routes[req.url] || [404, {}, "not found"];
    const [status, headers, body] = typeof route === "function" ? route(req) : route;
    res.writeHead(status, headers);
    res.end(body);
  });
  await new Promise((r) => server.listen(0, host, r));
  return { seen, port: server.address().port, close: () => new Promise((r) => server.close(r)) };
}

const inside = await target("127.0.0.1", {
  "/secret": [200, { "content-type": "application/json" }, '{"secret": 42}'],
  // A careless service: it echoes the credentials it was sent.
  "/echo-auth": (req) => [200, { "content-type": "application/json" },
                          JSON.stringify({ got: req.headers.authorization })],
});
const token = `e2e-${randomBytes(12).toString("hex")}`;
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
  E2E_API_TOKEN: token,
  CDE_SECRETS_ENV: '["E2E_API_TOKEN"]',
};

// An operator's workflow (from --workflows) that fetches the URL it is given.
const dir = mkdtempSync(join(tmpdir(), "cde-policy-e2e-"));
const workflows = join(dir, "workflows");
mkdirSync(workflows);
writeFileSync(join(workflows, "op-fetch.json"), JSON.stringify({
  name: "op-fetch", version: 1,
  steps: [{ name: "get", action: "http", params: { url: "${input.url}" } }] }));

writeFileSync(join(workflows, "op-secret.json"), JSON.stringify({
  name: "op-secret", version: 1,
  steps: [{ name: "call", action: "http",
            params: { url: `http://127.0.0.1:${inside.port}/echo-auth`,
                      headers: { Authorization: "Bearer ${secret.E2E_API_TOKEN}" } } }] }));

// Every file below `dir` whose bytes hold `needle`.
function filesHolding(dir, needle) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return filesHolding(path, needle);
    return e.isFile() && readFileSync(path).includes(needle) ? [path] : [];
  });
}

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

  // A secret: sent, and nowhere else.
  const sent = await run(client, "op-secret", {});
  assert.equal(sent.state, "completed", JSON.stringify(sent));
  assert.deepEqual(sent.steps[0].output, { got: "Bearer [secret]" });
  const log = await tool(client, "get_saga_log", { saga_id: sent.saga_id });
  assert.ok(!JSON.stringify(log).includes(token), "the secret in the saga log");
  const resource = await client.readResource({ uri: "workflow://op-secret/1" });
  assert.match(resource.contents[0].text, /Bearer \$\{secret\.E2E_API_TOKEN\}/);
  assert.ok(!JSON.stringify(resource).includes(token));
  // A client may not name it.
  const stealing = fetchDefinition(`e2e-steal-${transport}`, `http://127.0.0.2:${hop.port}/fine?k=\${secret.E2E_API_TOKEN}`);
  const stolen = await tool(client, "register_workflow", { definition: stealing });
  assert.equal(stolen.isError, true, JSON.stringify(stolen));
  assert.match(stolen.structuredContent.error.message, /secrets are not available to definitions registered by clients/);

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
    let log = "";
    client.transport.stderr.on("data", (d) => { log += d; });
    try {
      await conversation(client, "stdio", null);
    } finally {
      await client.close();
    }
    assert.ok(log.includes('"op-secret"'), "the server logged nothing of the saga");
    assert.ok(!log.includes(token), "the secret in the server's log");
  });
  await check("http: the http destination policy, and the server's own listener", async () => {
    const server = await serveHttp(binary, ["--data-dir", join(dir, "http"), "--workflows", workflows], { env });
    let log = "";
    server.proc.stderr.on("data", (d) => { log += d; });
    const client = new Client({ name: "cde-policy-e2e", version: "1.0.0" });
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL(`${server.base}/mcp`)));
      await conversation(client, "http", server.base);
    } finally {
      await client.close();
      server.proc.kill("SIGTERM");
      await server.exited;
    }
    assert.ok(!log.includes(token), "the secret in the server's log");
  });
  // A random token stays literal even in a compressed SST block; the C++
  // test (secrets_test.cc) also reads every row.
  await check("no file of either store holds the secret", async () => {
    assert.ok(filesHolding(dir, "op-secret").length > 0, "the stores are there");
    assert.deepEqual(filesHolding(dir, token), []);
  });
  // Nothing the policy refused reached the inside server: only the
  // operator's two fetches did.
  await check("the refused requests never reached the target", async () => {
    assert.deepEqual(inside.seen.filter((u) => u !== "/echo-auth"), ["/secret", "/secret"]);
  });
} finally {
  await inside.close();
  await hop.close();
  rmSync(dir, { recursive: true, force: true });
}
finish("policy e2e");
