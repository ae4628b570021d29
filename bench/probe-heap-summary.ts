// Probe: what a V8 heap snapshot holds, by constructor: count and self size, largest first (the per-user costs show
// as counts that are a multiple of the users). Take the snapshot with `npm run bench:bridge -- --heap-snapshot
// --node-args="--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=DIR"` (after connect, after the memory was read).
//   node --max-old-space-size=8192 --import tsx bench/probe-heap-summary.ts file.heapsnapshot [top=40]
import { readFileSync } from "node:fs";

const [file, topArg] = process.argv.slice(2);
if (!file) throw new Error("usage: probe-heap-summary.ts file.heapsnapshot [top]");
const snap = JSON.parse(readFileSync(file, "utf8")) as {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
};
const f = snap.snapshot.meta.node_fields;
const width = f.length, iType = f.indexOf("type"), iName = f.indexOf("name"), iSize = f.indexOf("self_size");
const types = snap.snapshot.meta.node_types[0];
const by = new Map<string, { n: number; size: number }>();
let total = 0;
for (let i = 0; i < snap.nodes.length; i += width) {
  const type = types[snap.nodes[i + iType]!]!;
  const name = type === "object" || type === "closure" ? snap.strings[snap.nodes[i + iName]!]! : `(${type})`;
  const key = `${type === "closure" ? "closure " : ""}${name}`.slice(0, 80);
  const e = by.get(key) ?? { n: 0, size: 0 };
  e.n++;
  e.size += snap.nodes[i + iSize]!;
  total += snap.nodes[i + iSize]!;
  by.set(key, e);
}
console.log(`total self size ${(total / 1048576).toFixed(1)} MiB in ${snap.nodes.length / width} nodes`);
for (const [k, v] of [...by].sort((a, b) => b[1].size - a[1].size).slice(0, Number(topArg ?? 40))) {
  console.log(`${(v.size / 1048576).toFixed(2).padStart(8)} MiB ${String(v.n).padStart(9)}  ${k}`);
}
