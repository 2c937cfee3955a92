// End-to-end: the Streamable HTTP transport of the real cde-orchestrator
// binary, spoken to with plain fetch so that every header and status code is
// visible: sessions, Origin checks, MCP-Protocol-Version, bearer tokens,
// SSE streams, limits and command-line errors.
//
//   node mcp_http_e2e.mjs /path/to/cde-orchestrator
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { check, finish, serveHttp } from "./lib.mjs";

const binary = process.argv[2];

async function startServer(dir, extra = []) {
  const { proc, base, exited } = await serveHttp(binary, ["--data-dir", dir, ...extra]);
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  return {
    url: `${base}/mcp`,
    base,
    stderr: () => stderr,
    async stop() {
      proc.kill("SIGTERM");
      return exited;
    },
  };
}

const ACCEPT = "application/json, text/event-stream";

function rpc(id, method, params = {}) {
  return JSON.stringify({ jsonrpc: "2.0", id, method, params });
}

async function post(url, body, headers = {}) {
  return fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: ACCEPT, ...headers },
    body,
  });
}

async function initialize(url, headers = {}) {
  const r = await post(url, rpc(1, "initialize", {
    protocolVersion: "2025-11-25",
    capabilities: {},
    clientInfo: { name: "raw", version: "1" },
  }), headers);
  assert.equal(r.status, 200, await r.clone().text());
  const sid = r.headers.get("mcp-session-id");
  assert.match(sid, /^[0-9a-f]{32}$/);
  const body = await r.json();
  assert.equal(body.result.protocolVersion, "2025-11-25");
  const note = await post(url, JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
                          { "Mcp-Session-Id": sid, ...headers });
  assert.equal(note.status, 202);
  return sid;
}

// Reads SSE events from a fetch response body until `until(events)` holds.
async function readEvents(response, until, timeoutMs = 60000) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const events = [];
  const deadline = Date.now() + timeoutMs;
  while (!until(events)) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`SSE: timed out with ${JSON.stringify(events)}`);
    const chunk = await Promise.race([
      reader.read(),
      new Promise((r) => setTimeout(() => r({ timeout: true }), left)),
    ]);
    if (chunk.timeout) continue;
    if (chunk.done) break;
    buffer += decoder.decode(chunk.value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6));
      if (data.length) events.push(JSON.parse(data.join("\n")));
    }
  }
  return { events, reader };
}

const dir = mkdtempSync(join(tmpdir(), "cde-http-e2e-"));
try {
  const server = await startServer(join(dir, "open"));
  try {
    await check("initialize issues a session id; requests without one get 400, unknown ones 404", async () => {
      const sid = await initialize(server.url);
      const ok = await post(server.url, rpc(2, "ping"), { "Mcp-Session-Id": sid });
      assert.equal(ok.status, 200);
      assert.deepEqual((await ok.json()).result, {});
      const none = await post(server.url, rpc(3, "ping"));
      assert.equal(none.status, 400);
      assert.match((await none.json()).error.message, /Mcp-Session-Id/);
      const unknown = await post(server.url, rpc(4, "ping"), { "Mcp-Session-Id": "0".repeat(32) });
      assert.equal(unknown.status, 404);
    });

    await check("a foreign Origin is refused with 403; localhost origins are allowed", async () => {
      const evil = await post(server.url, rpc(1, "initialize", { protocolVersion: "2025-11-25" }),
                              { Origin: "http://evil.example" });
      assert.equal(evil.status, 403);
      assert.match((await evil.json()).error.message, /origin 'http:\/\/evil.example' is not allowed/);
      const rebinding = await post(server.url, rpc(1, "initialize", {}),
                                   { Origin: "http://localhost.evil.example" });
      assert.equal(rebinding.status, 403);
      await initialize(server.url, { Origin: "http://localhost:5173" });
      await initialize(server.url, { Origin: "http://127.0.0.1" });
    });

    await check("an unsupported MCP-Protocol-Version gets 400 naming the supported ones", async () => {
      const sid = await initialize(server.url);
      const r = await post(server.url, rpc(2, "ping"),
                           { "Mcp-Session-Id": sid, "MCP-Protocol-Version": "1999-01-01" });
      assert.equal(r.status, 400);
      assert.match((await r.json()).error.message, /unsupported MCP-Protocol-Version '1999-01-01'.*2025-11-25/);
      const good = await post(server.url, rpc(3, "ping"),
                              { "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18" });
      assert.equal(good.status, 200);
    });

    await check("malformed JSON gets 400 with a JSON-RPC parse error; notifications get 202", async () => {
      const sid = await initialize(server.url);
      const bad = await post(server.url, "{not json", { "Mcp-Session-Id": sid });
      assert.equal(bad.status, 400);
      assert.equal((await bad.json()).error.code, -32700);
      const note = await post(server.url, JSON.stringify({ jsonrpc: "2.0", method: "notifications/whatever" }),
                              { "Mcp-Session-Id": sid });
      assert.equal(note.status, 202);
    });

    await check("GET opens the session's SSE stream; DELETE ends the stream and the session", async () => {
      const sid = await initialize(server.url);
      const noAccept = await fetch(server.url, { headers: { "Mcp-Session-Id": sid, Accept: "application/json" } });
      assert.equal(noAccept.status, 406);
      const stream = await fetch(server.url, { headers: { "Mcp-Session-Id": sid, Accept: "text/event-stream" } });
      assert.equal(stream.status, 200);
      assert.match(stream.headers.get("content-type"), /^text\/event-stream/);
      const del = await fetch(server.url, { method: "DELETE", headers: { "Mcp-Session-Id": sid } });
      assert.equal(del.status, 204);
      // The stream ends with the session.
      const reader = stream.body.getReader();
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
      }
      const after = await post(server.url, rpc(9, "ping"), { "Mcp-Session-Id": sid });
      assert.equal(after.status, 404);
    });

    await check("other methods get 405 with Allow", async () => {
      const r = await fetch(server.url, { method: "PUT", body: "{}" });
      assert.equal(r.status, 405);
      assert.equal(r.headers.get("allow"), "GET, POST, DELETE");
    });

    await check("the server announces itself in <data-dir>/server.json while it runs", async () => {
      const about = JSON.parse(readFileSync(join(dir, "open", "server.json"), "utf8"));
      assert.equal(about.mcp, server.url);
      assert.equal(about.http, server.base);
      assert.ok(Number.isInteger(about.pid) && about.pid > 0);
    });

    await check("the SDK client works over the same transport", async () => {
      const client = new Client({ name: "cde-e2e", version: "1.0.0" });
      await client.connect(new StreamableHTTPClientTransport(new URL(server.url)));
      const { tools } = await client.listTools();
      assert.ok(tools.some((t) => t.name === "start_workflow"));
      await client.close();
    });
  } finally {
    const { code } = await server.stop();
    await check("a clean stop exits 0 and removes server.json", async () => {
      assert.equal(code, 0, server.stderr());
      assert.equal(existsSync(join(dir, "open", "server.json")), false);
    });
  }

  const tokens = join(dir, "tokens");
  writeFileSync(tokens, "# one per line\nsecret-one\nsecret-two\n");
  const guarded = await startServer(join(dir, "guarded"), ["--auth-tokens", tokens]);
  try {
    await check("with --auth-tokens: 401 and WWW-Authenticate without or with a wrong token", async () => {
      const none = await post(guarded.url, rpc(1, "initialize", {}));
      assert.equal(none.status, 401);
      assert.equal(none.headers.get("www-authenticate"), 'Bearer realm="cde-orchestrator"');
      const wrong = await post(guarded.url, rpc(1, "initialize", {}), { Authorization: "Bearer secret" });
      assert.equal(wrong.status, 401);
      assert.match(wrong.headers.get("www-authenticate"), /error="invalid_token"/);
      await initialize(guarded.url, { Authorization: "Bearer secret-two" });
      // Probes stay open to the orchestrator that runs us.
      assert.equal((await fetch(`${guarded.base}/health/liveness`)).status, 200);
    });

    await check("with --auth-tokens: the SDK client sends its token and works", async () => {
      const client = new Client({ name: "cde-e2e", version: "1.0.0" });
      await client.connect(new StreamableHTTPClientTransport(new URL(guarded.url), {
        requestInit: { headers: { Authorization: "Bearer secret-one" } },
      }));
      const { tools } = await client.listTools();
      assert.ok(tools.length > 0);
      await client.close();
    });
  } finally {
    await guarded.stop();
  }

  const small = await startServer(join(dir, "small"), ["--max-message-bytes", "2048"]);
  try {
    await check("a message over --max-message-bytes gets 413", async () => {
      const sid = await initialize(small.url);
      const big = rpc(2, "tools/call", { name: "echo", arguments: { pad: "x".repeat(4096) } });
      const r = await post(small.url, big, { "Mcp-Session-Id": sid });
      assert.equal(r.status, 413);
    });
  } finally {
    await small.stop();
  }

  await check("bad --http values and --http none alone are refused before starting", async () => {
    for (const [args, message] of [
      [["--http", "nonsense"], /--http: 'nonsense' is not HOST:PORT or none/],
      [["--http", "127.0.0.1:99999"], /--http: bad port/],
      [["--http", "none"], /--http none without --stdio leaves nothing to serve/],
      [["--auth-tokens", join(dir, "missing")], /--auth-tokens: cannot read/],
    ]) {
      const r = spawnSync(binary, ["serve", "--data-dir", join(dir, "never"), ...args], { encoding: "utf8" });
      assert.equal(r.status, 2, `${args}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
finish("HTTP transport");
