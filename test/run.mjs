#!/usr/bin/env node
// One entry point for every suite, so CI and people run the same thing. Node's runner is used per suite
// (heavy suites run one file at a time), and the totals of all suites end the run as one line:
// "N passed, N failed".
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, mkdtempSync } from "node:fs";
import { join, relative } from "node:path";
import { tmpdir } from "node:os";

const root = new URL("..", import.meta.url).pathname;
const SUITES = [
  { name: "unit", dirs: ["test/unit", "test/otr"], concurrency: 2 },
  { name: "store", dirs: ["test/store"], concurrency: 1 },
  { name: "interop", dirs: ["test/interop"], concurrency: 1 },
  { name: "e2e", dirs: ["test/e2e"], concurrency: 1 },
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
for (const suite of SUITES) {
  if (wanted.length && !wanted.includes(suite.name)) continue;
  const files = suite.dirs.flatMap(testFiles).filter((f) => f.includes(filter));
  if (!files.length) continue;
  console.log(`\n=== suite ${suite.name}: ${files.length} file(s) ===`);
  const tap = join(tmp, `${suite.name}.tap`);
  const r = spawnSync(process.execPath, [
    "--import", "tsx", "--test", `--test-concurrency=${suite.concurrency}`,
    "--test-reporter=spec", "--test-reporter-destination=stdout",
    "--test-reporter=tap", `--test-reporter-destination=${tap}`,
    ...files,
  ], { cwd: root, stdio: ["ignore", "inherit", "inherit"], env: process.env });
  let text = "";
  try { text = readFileSync(tap, "utf8"); } catch { /* runner died before writing */ }
  const num = (k) => Number((text.match(new RegExp(`^# ${k} (\\d+)$`, "m")) ?? [])[1] ?? 0);
  passed += num("pass"); failed += num("fail"); skipped += num("skipped");
  if (r.status !== 0 && num("fail") === 0) { failed += 1; console.log(`suite ${suite.name} exited ${r.status} without a failing test: counted as one failure`); }
}
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
