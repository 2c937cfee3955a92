// The doc test: runs every command block of README.md and
// docs/getting-started.md as a new user would, against a fresh demo server,
// and checks that each command's output still matches the output the doc
// shows. A doc that drifts from what the code does fails here.
//
// usage: node doc_commands.mjs SOURCE_DIR BUILD_DIR
//
// The rules (docs/testing.md, "The doc test"):
// - A ```sh block holds commands, each followed by the output it prints. A
//   line beginning with `./tools/`, `./build/`, `build/` or `curl ` is a
//   command; the lines after it, up to the next command, are its output.
//   A `  # comment` after a command is dropped.
// - A document runs in order, in a fresh directory of its own that holds
//   `build` (the build under test), `tools` and `docs` (links), so that its
//   commands run as written from the top of a checkout.
// - `./tools/cde-dev run` and `./tools/cde-dev demo` start the server (and
//   the demo services) in the background, with CDE_NO_BUILD=1 (the build is
//   there already); the test waits until they are ready, on 127.0.0.1:8000
//   (and :9100), ending the one started before. `./tools/cde-dev test` is
//   this suite: it is not run. Every other command must exit 0.
// - Output is compared line by line with runs of spaces made one. A line
//   `...` stands for any lines (none included); `...` within a line for any
//   text. Saga ids, ISO times, epoch milliseconds, durations (`1.5s`,
//   `33ms`) and `pid N` are masked. A saga id is carried: once a command's
//   output showed the id the doc names, later commands naming it are run
//   with the real one, and later output must show the real one there.
// - The Claude Desktop configuration of getting-started.md (its ```json
//   block with "mcpServers", /home/you/cde standing for the checkout) is
//   started as Claude Desktop would start it, over stdio with the SDK
//   client, once the demo server has ended.
import { spawn, spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { check, finish, until } from "./lib.mjs";

const [sourceDir, buildDir] = process.argv.slice(2);
if (!sourceDir || !buildDir) {
  console.error("usage: node doc_commands.mjs SOURCE_DIR BUILD_DIR");
  process.exit(2);
}
const DOCS = ["README.md", "docs/getting-started.md"];
const SERVER_PORT = 8000;
const DEMO_PORT = 9100;
const COMMAND_TIMEOUT_MS = 120000;
const CHECKOUT_PLACEHOLDER = "/home/you/cde";

// --- Reading the blocks -----------------------------------------------------

const COMMAND_LINE = /^(\.\/tools\/|\.\/build\/|build\/|curl )/;

// [{doc, line, commands: [{line, text, output: [lines]}]}] for each ```sh
// block, in order; plus the ```json blocks (for the MCP client set-up).
function readBlocks(doc) {
  const lines = readFileSync(join(sourceDir, doc), "utf8").split("\n");
  const sh = [], json = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w*)\s*$/.exec(lines[i]);
    if (!fence) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    if (end === lines.length) throw new Error(`${doc}:${i + 1}: a code block that never ends`);
    const body = lines.slice(start, end);
    if (fence[1] === "sh") {
      const commands = [];
      body.forEach((text, k) => {
        if (COMMAND_LINE.test(text)) {
          commands.push({ line: start + k + 1, text: text.replace(/\s+#\s.*$/, "").trim(), output: [] });
        } else if (commands.length === 0) {
          throw new Error(`${doc}:${start + k + 1}: a sh block must begin with a command, not '${text}'`);
        } else {
          commands[commands.length - 1].output.push(text);
        }
      });
      sh.push({ doc, line: i + 1, commands });
    } else if (fence[1] === "json") {
      json.push({ line: i + 1, text: body.join("\n") });
    }
    i = end;
  }
  return { sh, json };
}

// --- Matching output ----------------------------------------------------------

const ID = "[0-9A-HJKMNP-TV-Z]{26}";
// Masked in expected output: each is matched by its pattern, not literally.
const MASKS = [
  { kind: "id", re: new RegExp(`\\b${ID}\\b`) },
  { kind: "any", re: /\.\.\./, pattern: ".*" },
  { kind: "time", re: /\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\b/,
    pattern: "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)?Z" },
  { kind: "epoch_ms", re: /\b1\d{12}\b/, pattern: "\\d{13}" },
  { kind: "pid", re: /\bpid \d+\b/, pattern: "pid \\d+" },
  { kind: "duration", re: /\b\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h)\b/,
    pattern: "\\d+(?:\\.\\d+)?(?:ns|us|µs|ms|s|m|h)" },
];
const ANY_MASK = new RegExp(MASKS.map((m) => `(${m.re.source})`).join("|"), "g");
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const normalize = (s) => s.replace(/\s+/g, " ").trim();

// Matches one expected line against one actual line under the ids bound so
// far; returns the bindings it adds (doc id -> real id), or null.
function matchLine(expected, actual, ids) {
  let pattern = "", last = 0;
  const captured = [];
  for (const m of expected.matchAll(ANY_MASK)) {
    pattern += escape(expected.slice(last, m.index));
    const mask = MASKS[m.slice(1).findIndex((g) => g !== undefined)];
    if (mask.kind !== "id") {
      pattern += mask.pattern;
    } else if (ids.has(m[0])) {
      pattern += escape(ids.get(m[0]));
    } else {
      pattern += `(${ID})`;
      captured.push(m[0]);
    }
    last = m.index + m[0].length;
  }
  pattern += escape(expected.slice(last));
  const got = new RegExp(`^${pattern}$`).exec(actual);
  if (!got) return null;
  const added = new Map();
  for (let k = 0; k < captured.length; k++) {
    const docId = captured[k], real = got[k + 1];
    if ((added.has(docId) && added.get(docId) !== real) || [...ids.values()].includes(real)) return null;
    added.set(docId, real);
  }
  return added;
}

// Matches the expected lines against the actual ones (`...` lines standing
// for any lines); returns the ids bound on the way, or null.
function matchOutput(expected, actual, ids, e = 0, a = 0) {
  if (e === expected.length) return a === actual.length ? ids : null;
  if (expected[e] === "...") {
    for (let skip = a; skip <= actual.length; skip++) {
      const r = matchOutput(expected, actual, ids, e + 1, skip);
      if (r) return r;
    }
    return null;
  }
  if (a === actual.length) return null;
  const added = matchLine(expected[e], actual[a], ids);
  if (!added) return null;
  return matchOutput(expected, actual, new Map([...ids, ...added]), e + 1, a + 1);
}

// --- The server ---------------------------------------------------------------

// The process groups started here and not yet ended: killed if this script
// exits early, so that no server outlives the test holding its ports.
const liveGroups = new Set();
process.on("exit", () => {
  for (const pgid of liveGroups) {
    try { process.kill(-pgid, "SIGKILL"); } catch { /* gone */ }
  }
});

const portOpen = (port) => new Promise((resolve) => {
  const socket = connect({ host: "127.0.0.1", port });
  socket.on("connect", () => { socket.destroy(); resolve(true); });
  socket.on("error", () => resolve(false));
});

async function answers(url) {
  try {
    return (await fetch(url)).status === 200;
  } catch {
    return false;
  }
}

// `./tools/cde-dev run|demo` in `dir`, in a process group of its own, its
// output in dir/server-N.log. Resolves once the server that wrote
// dir/cde-data/server.json answers on :8000 (and the demo services on
// :9100).
async function startServer(dir, command, n) {
  for (const port of [SERVER_PORT, DEMO_PORT]) {
    if (await portOpen(port)) throw new Error(`port ${port} is taken: the doc's commands need it free`);
  }
  const logPath = join(dir, `server-${n}.log`);
  const log = openSync(logPath, "w");
  const proc = spawn("bash", ["-c", command], {
    cwd: dir, detached: true, stdio: ["ignore", log, log],
    env: { ...process.env, CDE_NO_BUILD: "1" },
  });
  closeSync(log);
  liveGroups.add(proc.pid);
  let ended = null;
  const exited = new Promise((r) => proc.on("exit", (code, signal) => r((ended = { code, signal }))));
  const server = { proc, exited, logPath };
  const demo = / demo\b/.test(command);
  try {
    await waitReady(command, dir, logPath, demo, () => ended);
  } catch (e) {
    await stopServer(server).catch(() => {});  // it must not keep the ports
    throw e;
  }
  return server;
}

async function waitReady(command, dir, logPath, demo, ended) {
  await until(`'${command}' to be ready`, async () => {
    if (ended()) {
      throw new Error(`'${command}' ended before it was ready (${JSON.stringify(ended())}):\n` +
        readFileSync(logPath, "utf8").slice(-4000));
    }
    let about;
    try {
      about = JSON.parse(readFileSync(join(dir, "cde-data", "server.json"), "utf8"));
    } catch {
      return false;
    }
    return about.http === `http://127.0.0.1:${SERVER_PORT}` &&
      await answers(`${about.http}/health/readiness`) &&
      (!demo || await answers(`http://127.0.0.1:${DEMO_PORT}/demo/state`));
  }, 120000);
}

// Ends the server as Ctrl-C would (SIGINT to its process group), then waits
// until it has ended and both ports are free again.
async function stopServer(server) {
  try {
    process.kill(-server.proc.pid, "SIGINT");
  } catch {
    // already gone
  }
  const late = setTimeout(() => {
    try { process.kill(-server.proc.pid, "SIGKILL"); } catch { /* gone */ }
  }, 60000);
  await server.exited;
  clearTimeout(late);
  liveGroups.delete(server.proc.pid);
  await until("ports 8000 and 9100 to be free", async () =>
    !(await portOpen(SERVER_PORT)) && !(await portOpen(DEMO_PORT)));
}

// --- Running a document ---------------------------------------------------------

function scratchDir() {
  const dir = mkdtempSync(join(tmpdir(), "cde-doc-"));
  symlinkSync(buildDir, join(dir, "build"));
  symlinkSync(join(sourceDir, "tools"), join(dir, "tools"));
  symlinkSync(join(sourceDir, "docs"), join(dir, "docs"));
  return dir;
}

function runCommand(dir, text) {
  const r = spawnSync("bash", ["-c", `exec 2>&1\n${text}`], {
    cwd: dir, encoding: "utf8", timeout: COMMAND_TIMEOUT_MS, killSignal: "SIGKILL",
    env: { ...process.env, NO_COLOR: "1" },
  });
  if (r.error) throw r.error;
  const lines = r.stdout.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return { status: r.status, signal: r.signal, lines };
}

function withIds(text, ids) {
  return text.replace(new RegExp(`\\b${ID}\\b`, "g"), (id) => {
    if (!ids.has(id)) throw new Error(`names saga ${id}, which no output before it showed`);
    return ids.get(id);
  });
}

async function runDoc(doc) {
  const { sh, json } = readBlocks(doc);
  const dir = scratchDir();
  let server = null, servers = 0, ids = new Map();
  try {
    for (const block of sh) {
      for (const cmd of block.commands) {
        const where = `${doc}:${cmd.line} ${cmd.text}`;
        if (/^\.\/tools\/cde-dev test\b/.test(cmd.text)) {
          console.log(`skip ${where} (this suite itself)`);
          continue;
        }
        await check(where, async () => {
          if (/^\.\/tools\/cde-dev (run|demo)\b/.test(cmd.text)) {
            if (cmd.output.length) throw new Error("a server command's output is not compared: show none");
            if (server) await stopServer(server);
            server = null;
            server = await startServer(dir, cmd.text, ++servers);
            return;
          }
          const ran = runCommand(dir, withIds(cmd.text, ids));
          if (ran.status !== 0) {
            throw new Error(`exited ${ran.status ?? ran.signal}:\n${ran.lines.join("\n")}`);
          }
          const expected = cmd.output.map(normalize);
          const bound = matchOutput(expected, ran.lines.map(normalize), ids);
          if (!bound) {
            throw new Error(`the output differs from the doc's.\n--- the doc shows:\n${cmd.output.join("\n")}\n` +
              `--- the command printed:\n${ran.lines.join("\n")}`);
          }
          ids = bound;
        });
      }
    }
    if (server) await stopServer(server);
    server = null;
    const claude = json.find((b) => b.text.includes('"mcpServers"'));
    if (claude) {
      await check(`${doc}:${claude.line} the Claude Desktop configuration starts a server over stdio`,
        () => checkClaudeDesktopConfig(dir, claude.text));
    }
  } finally {
    if (server) await stopServer(server);
    rmSync(dir, { recursive: true, force: true });
  }
}

// Starts the configured server as Claude Desktop does (command and args,
// over stdio) and lists its workflows with the SDK client.
async function checkClaudeDesktopConfig(dir, text) {
  const config = JSON.parse(text.replaceAll(CHECKOUT_PLACEHOLDER, dir));
  const servers = Object.values(config.mcpServers);
  if (servers.length !== 1) throw new Error(`expected one server, found ${servers.length}`);
  const { command, args } = servers[0];
  const client = new Client({ name: "claude-desktop-config-check", version: "1.0.0" });
  const transport = new StdioClientTransport({ command, args, cwd: dir, stderr: "ignore" });
  try {
    await client.connect(transport);
    const tools = (await client.listTools()).tools.map((t) => t.name);
    for (const want of ["start_workflow", "list_workflows", "get_saga"]) {
      if (!tools.includes(want)) throw new Error(`no ${want} tool among ${tools.join(", ")}`);
    }
    const listed = await client.callTool({ name: "list_workflows", arguments: {} });
    const names = JSON.stringify(listed.structuredContent);
    if (!names.includes('"trip-booking"')) throw new Error(`trip-booking is not listed: ${names.slice(0, 400)}`);
    if (args.includes("--http") && !(await answers(`http://127.0.0.1:${SERVER_PORT}/health/readiness`))) {
      throw new Error("the configuration serves HTTP on 127.0.0.1:8000, which does not answer");
    }
  } finally {
    await client.close();  // ends the server (stdin closed, then a signal)
    // Its store and port are let go before the next server or the cleanup.
    if (args.includes("--http")) {
      await until("the stdio server to free port 8000", async () => !(await portOpen(SERVER_PORT)));
    }
  }
}

for (const doc of DOCS) await runDoc(doc);
finish("doc command");
