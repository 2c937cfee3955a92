// What every e2e script shares: named checks that report and count
// failures, the exit that follows them, and a server started over HTTP.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

let failures = 0;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Runs one named check; a failure is printed with its stack and counted.
export async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}

// Prints the summary and exits 0 only if every check passed.
export function finish(what) {
  console.log(failures === 0 ? `all ${what} checks passed` : `${failures} ${what} check(s) failed`);
  process.exit(failures === 0 ? 0 : 1);
}

// Polls `fn` until it returns a truthy value, which it returns; throws
// after `ms` (long enough for a sanitizer build on a loaded machine: a
// passing check never waits it out).
export async function until(what, fn, ms = 60000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

// Starts `binary serve ...args --http 127.0.0.1:0` and waits until it has
// named its port in <data-dir>/server.json (a port picked here and bound
// there could be taken in between) and /health/readiness answers 200.
// Throws if the server exits first or is not ready within a minute.
// `exited` resolves with {code, signal} once the server ends; stop it with
// proc.kill().
export async function serveHttp(binary, args, { env, stdio = ["ignore", "ignore", "pipe"] } = {}) {
  const dataDir = args[args.indexOf("--data-dir") + 1];
  const proc = spawn(binary, ["serve", ...args, "--http", "127.0.0.1:0"], { env, stdio });
  let ended = null;
  const exited = new Promise((r) => proc.on("exit", (code, signal) => {
    ended = { code, signal };
    r(ended);
  }));
  const serverFile = join(dataDir, "server.json");
  const base = await until("the server to be ready", async () => {
    if (ended) throw new Error(`the server exited before it was ready: ${JSON.stringify(ended)}`);
    let about;
    try {
      about = JSON.parse(readFileSync(serverFile, "utf8"));
    } catch {
      return null;  // not written yet
    }
    if (about.pid !== proc.pid || typeof about.http !== "string") return null;
    try {
      const r = await fetch(`${about.http}/health/readiness`);
      return r.status === 200 ? about.http : null;
    } catch {
      return null;
    }
  });
  const port = Number(new URL(base).port);
  return { proc, port, base, exited };
}
