// What every e2e script shares: named checks that report and count
// failures, and the exit that follows them.
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
