// The bridge bench at CI size (U = 50, a few seconds of traffic per rate), so `npm run bench:bridge` never rots: it
// must start everything, run the workload against our bridge and Heisenbridge, and produce figures for both. This
// asserts that the bench ran and measured, never what it measured: no timing or memory figure is compared to
// anything (the machine is shared; the targets are checked by the bench itself, at full size, in its table).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs, runBench } from "../../bench/bridge.js";
import { renderReport } from "../../bench/bridge-report.js";

const ROOT = resolve(new URL("../..", import.meta.url).pathname);

describe("bench:bridge at CI size", { timeout: 20 * 60_000 }, () => {
  it("runs both bridges through the workload and produces the table with figures for each", async () => {
    // The bench runs the built CLI, as operators do. The type check is other suites' job: only the output matters here.
    spawnSync("npm", ["run", "-s", "build"], { cwd: ROOT, stdio: "ignore" });
    assert.ok(existsSync(join(ROOT, "dist/cli.js")), "npm run build produced dist/cli.js");
    const o = parseArgs(["--users=50", "--seconds=3", "--max-minutes=15", "--libotr=2"]);
    const lines: string[] = [];
    const report = await runBench({ ...o, metricsOut: null, log: (s) => lines.push(s) });
    const text = renderReport(report);
    // The table in the CI log: figures to look at, never to assert on.
    console.log(text);
    const [ours, theirs] = report.figures;
    assert.ok(ours && theirs, `figures for both bridges:\n${text}\n${lines.join("\n")}`);
    assert.equal(ours.bridge, "matrix-otr-irc");
    assert.equal(theirs.bridge, "heisenbridge");
    for (const f of [ours, theirs]) {
      assert.equal(f.users, 50);
      assert.ok(f.connected > 0 && f.dms > 0, `${f.bridge} connected users and opened DMs:\n${text}`);
      for (const m of [f.idle, f.afterConnect, f.afterTraffic]) assert.ok(Number.isFinite(m.rss) && m.rss > 0, `${f.bridge} RSS read`);
      assert.equal(f.rates.length, 2, `${f.bridge} ran both rates`);
      for (const r of f.rates) {
        assert.ok(r.sent > 0, `${f.bridge} sent at ${r.rate}/s`);
        assert.ok(r.i2m.n > 0 && r.m2i.n > 0, `${f.bridge} measured latency both ways at ${r.rate}/s:\n${text}`);
        assert.ok(Number.isFinite(r.cpuPer1000), `${f.bridge} CPU per 1000 messages at ${r.rate}/s`);
      }
    }
    // Ours: OTR DMs went private, and its own figures (heap, event-loop lag, bridge-added latency) were read.
    assert.ok(ours.otrSecure > 0, `some OTR DMs went private:\n${text}`);
    assert.ok(ours.afterConnect.heap !== null && ours.afterConnect.heap > 0, "JS heap read from the bridge's metrics");
    for (const r of ours.rates) {
      assert.ok(r.loopLagP99Ms !== null && Number.isFinite(r.loopLagP99Ms), "event-loop lag read");
      assert.ok(r.i2mBridge && r.m2iBridge, `bridge-added latency read at ${r.rate}/s`);
    }
    // What Heisenbridge cannot do is said, not hidden.
    assert.ok(report.facts.some((f) => /heisenbridge cannot speak OTR/.test(f)), text);
    for (const figure of ["RSS per user after connect, KiB", "@200/s IRC->Matrix p99, ms", "@50/s CPU s per 1000 messages"]) {
      const row = report.rows.find((r) => r.figure === figure);
      assert.ok(row && typeof row.ours === "number" && typeof row.theirs === "number", `row ${figure} has both figures:\n${text}`);
    }
    assert.match(text, /matrix-otr-irc\s+heisenbridge\s+ours\/theirs/);
  });
});
