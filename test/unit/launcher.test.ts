// The launcher's node flags: they are how the bridge keeps V8's young generation small (docs/operations.md
// "Memory"), and nothing else would notice them gone. The demo's e2e test runs the launcher itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { launcherNodeFlags } from "../harness/launcher.js";

// Enough short-lived garbage, with some survivors, for V8 to grow the young generation to its limit.
const CHURN = `
const v8 = require("node:v8");
const keep = [];
for (let i = 0; i < 3e6; i++) { const o = { a: i, b: "x" + i, c: [i, i] }; if (i % 50 === 0) keep.push(o); }
const ns = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
process.stdout.write(String(ns.space_size));
`;

test("the launcher caps the young generation: under churn it stays at 2 x 16 MiB semi-spaces", () => {
  const flags = launcherNodeFlags();
  assert.ok(flags.includes("--max-semi-space-size=16"), `launcher flags: ${flags.join(" ")}`);
  const r = spawnSync(process.execPath, [...flags, "-e", CHURN], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const newSpace = Number(r.stdout);
  assert.ok(newSpace > 0 && newSpace <= 32 * 1048576, `new space ${newSpace} bytes`);
});
