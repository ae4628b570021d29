#!/usr/bin/env node
// One entry point for every suite, so CI and people run the same thing. Node's runner is used per suite
// (heavy suites run one file at a time), and the totals of all suites end the run as one line:
// "N passed, N failed".
import { spawn } from "node:child_process";
import { createWriteStream, readdirSync, readFileSync, mkdtempSync } from "node:fs";
import { join, relative } from "node:path";
import { tmpdir } from "node:os";

const root = new URL("..", import.meta.url).pathname;
// End-to-end files that mostly wait on real time (an idle timeout, a strict server's flood pace) and use little
// CPU meanwhile: they run beside the other suites instead of after them (their output is printed at the end).
const QUIET = ["test/e2e/irc-idle.test.ts", "test/e2e/irc-flood.test.ts"];
const SUITES = [
  { name: "e2e-quiet", files: QUIET, concurrency: 1, beside: true },
  { name: "unit", dirs: ["test/unit", "test/otr"], concurrency: 2 },
  { name: "store", dirs: ["test/store"], concurrency: 1 },
  { name: "interop", dirs: ["test/interop"], concurrency: 1 },
  { name: "e2e", dirs: ["test/e2e"], concurrency: 1, except: QUIET },
];

function testFiles(dir) {
  let entries;
  try { entries = readdirSync(join(root, dir), { recursive: true, withFileTypes: false }); } catch { return []; }
  return entries
    .map(String)
    .filter((f) => f.endsWith(".test.ts"))
    .map((f) => join(dir, f))
    .sort();
}

// Printed first so a CI log shows which runtime every suite ran on (the project targets Node 24 LTS).
console.log(`node ${process.version} (${process.execPath}), openssl ${process.versions.openssl}`);
if (Number(process.versions.node.split(".")[0]) < 24) {
  console.log("0 passed, 1 failed: Node 24 or newer is required (run scripts/test.sh, which installs it)");
  process.exit(1);
}

const wanted = process.argv.slice(2);
const filter = process.env.TEST_FILTER ?? "";
const tmp = mkdtempSync(join(tmpdir(), "motr-test-"));
let passed = 0, failed = 0, skipped = 0;

/** Runs one suite's files in Node's runner; resolves with its counts once it exited. */
function runSuite(suite, files, out) {
  const tap = join(tmp, `${suite.name}.tap`);
  const child = spawn(process.execPath, [
    "--import", "tsx", "--test", `--test-concurrency=${suite.concurrency}`,
    "--test-reporter=spec", "--test-reporter-destination=stdout",
    "--test-reporter=tap", `--test-reporter-destination=${tap}`,
    ...files,
  ], { cwd: root, stdio: ["ignore", out ? "pipe" : "inherit", out ? "pipe" : "inherit"], env: process.env });
  if (out) { child.stdout.pipe(out, { end: false }); child.stderr.pipe(out, { end: false }); }
  return new Promise((resolve) => child.on("close", (status) => {
    let text = "";
    try { text = readFileSync(tap, "utf8"); } catch { /* runner died before writing */ }
    const num = (k) => Number((text.match(new RegExp(`^# ${k} (\\d+)$`, "m")) ?? [])[1] ?? 0);
    resolve({ status, pass: num("pass"), fail: num("fail"), skipped: num("skipped") });
  }));
}

function count(suite, r) {
  passed += r.pass; failed += r.fail; skipped += r.skipped;
  if (r.status !== 0 && r.fail === 0) { failed += 1; console.log(`suite ${suite.name} exited ${r.status} without a failing test: counted as one failure`); }
}

const besides = [];
for (const suite of SUITES) {
  // Asking for "e2e" runs its quiet files too.
  if (wanted.length && !wanted.includes(suite.name) && !wanted.includes(suite.name.split("-")[0])) continue;
  const files = (suite.files ?? suite.dirs.flatMap(testFiles)).filter((f) => f.includes(filter) && !(suite.except ?? []).includes(f));
  if (!files.length) continue;
  if (suite.beside) {
    const log = join(tmp, `${suite.name}.log`);
    const out = createWriteStream(log);
    console.log(`\n=== suite ${suite.name}: ${files.length} file(s), beside the others (output at the end) ===`);
    besides.push(runSuite(suite, files, out).then((r) => new Promise((res) => out.end(() => res({ suite, r, log })))));
    continue;
  }
  console.log(`\n=== suite ${suite.name}: ${files.length} file(s) ===`);
  count(suite, await runSuite(suite, files, null));
}
for (const { suite, r, log } of await Promise.all(besides)) {
  console.log(`\n=== suite ${suite.name} (ran beside the others) ===`);
  process.stdout.write(readFileSync(log, "utf8"));
  count(suite, r);
}
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
