// The MCP conformance suite (@modelcontextprotocol/conformance, pinned in
// package.json: the last release that runs on Debian 12's Node) against
// the real server over Streamable HTTP: every server scenario that applies
// to a server of its own tools, prompts and resources must pass.
//
// The other scenarios call fixtures of the suite's reference server by
// name (test_simple_text, test_prompt_with_arguments, test://static-text,
// json_schema_2020_12_tool, ...), which a workflow engine does not serve;
// the list below says so, and a scenario that the suite adds fails this
// test until it is placed in one list or the other.
//
//   node mcp_conformance.mjs /path/to/cde-orchestrator
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import assert from "node:assert/strict";
import { check, finish, serveHttp } from "./lib.mjs";

const binary = process.argv[2];
const examples = new URL("../../docs/examples", import.meta.url).pathname;
const require = createRequire(import.meta.url);
const suite = join(dirname(require.resolve("@modelcontextprotocol/conformance/package.json")),
                   "dist", "index.js");
const run = promisify(execFile);

const applies = [
  "server-initialize", "ping", "logging-set-level", "tools-list", "prompts-list",
  "resources-list", "server-sse-multiple-streams", "dns-rebinding-protection",
];
const needsTheReferenceFixtures = [
  "completion-complete", "tools-call-simple-text", "tools-call-image", "tools-call-audio",
  "tools-call-embedded-resource", "tools-call-mixed-content", "tools-call-with-logging",
  "tools-call-error", "tools-call-with-progress", "tools-call-sampling",
  "tools-call-elicitation", "json-schema-2020-12", "elicitation-sep1034-defaults",
  "elicitation-sep1330-enums", "server-sse-polling", "resources-read-text",
  "resources-read-binary", "resources-templates-read", "resources-subscribe",
  "resources-unsubscribe", "prompts-get-simple", "prompts-get-with-args",
  "prompts-get-embedded-resource", "prompts-get-with-image",
];

const dir = mkdtempSync(join(tmpdir(), "cde-conformance-"));
const server = await serveHttp(binary, ["--data-dir", join(dir, "data"), "--workflows", examples]);
try {
  await check("every server scenario of the suite is accounted for", async () => {
    const { stdout } = await run(process.execPath, [suite, "list"], { cwd: dir });
    const listed = stdout.split("Client scenarios")[0].split("\n")
      .map((l) => l.match(/^\s+- (\S+)/)?.[1]).filter(Boolean);
    assert.ok(listed.length > 20, stdout);
    assert.deepEqual(listed.filter((s) => !applies.includes(s) && !needsTheReferenceFixtures.includes(s)), []);
  });
  for (const scenario of applies) {
    await check(`conformance: ${scenario}`, async () => {
      let out;
      try {
        out = (await run(process.execPath,
                         [suite, "server", "--url", `${server.base}/mcp`, "--scenario", scenario],
                         { cwd: dir, timeout: 120000 })).stdout;
      } catch (e) {
        throw new Error(`${scenario} failed:\n${e.stdout}\n${e.stderr}`);
      }
      const summary = out.match(/Passed: (\d+)\/(\d+), (\d+) failed/);
      assert.ok(summary, out);
      assert.equal(summary[3], "0", out);
      assert.ok(Number(summary[1]) >= 1 && summary[1] === summary[2], out);
    });
  }
} finally {
  server.proc.kill("SIGTERM");
  await server.exited;
  rmSync(dir, { recursive: true, force: true });
}
finish("conformance");
