// contrib/grafana-dashboard.json queries only metrics the bridge defines, and covers every one of them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createMetrics, PREFIX } from "../../src/metrics/index.js";

test("the Grafana dashboard uses the registry's metric names, all of them", async () => {
  const dash = JSON.parse(readFileSync(new URL("../../contrib/grafana-dashboard.json", import.meta.url), "utf8")) as { panels: Array<{ targets: Array<{ expr: string }> }> };
  const used = new Set<string>();
  for (const p of dash.panels) for (const t of p.targets) {
    for (const m of t.expr.matchAll(new RegExp(`${PREFIX}[a-z0-9_]+`, "g"))) used.add(m[0].replace(/_(bucket|count|sum)$/, ""));
  }
  const defined = new Set((await createMetrics().registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith(PREFIX)));
  assert.deepEqual([...used].filter((n) => !defined.has(n)), [], "queried but not defined");
  assert.deepEqual([...defined].filter((n) => !used.has(n)), [], "defined but not on the dashboard");
});
