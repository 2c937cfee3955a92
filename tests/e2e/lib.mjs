// What every e2e script shares: named checks that report and count
// failures, the exit that follows them, and a server started over HTTP.
import { spawn } from "node:child_process";
import { createServer } from "node:net";

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

// A port nobody listens on right now (the kernel picks it).
function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Starts `binary serve ...args --http 127.0.0.1:PORT` on a free port and
// waits up to 5 s for /health/readiness to answer 200. `exited` resolves
// with {code, signal} once the server ends; stop it with proc.kill().
export async function serveHttp(binary, args, { env, stdio = ["ignore", "ignore", "pipe"] } = {}) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proc = spawn(binary, ["serve", ...args, "--http", `127.0.0.1:${port}`], { env, stdio });
  const exited = new Promise((r) => proc.on("exit", (code, signal) => r({ code, signal })));
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`${base}/health/readiness`);
      if (r.status === 200) break;
    } catch {}
    await sleep(25);
  }
  return { proc, port, base, exited };
}
