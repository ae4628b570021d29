// Reads a V8 .cpuprofile (node --cpu-prof, e.g. bench:bridge --node-args="--cpu-prof --cpu-prof-dir=DIR") and prints
// where the main thread spent its time: self time by function and by package, optionally inside a window of
// seconds since the profile started (the bench log's phase times minus the bridge's start give the window).
//   node --import tsx bench/probe-cpu-profile.ts FILE [FROM_S TO_S] [TOP]
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, fromArg, toArg, topArg] = process.argv.slice(2);
if (!file) {
  console.error("usage: probe-cpu-profile.ts FILE [FROM_S TO_S] [TOP]");
  process.exit(2);
}
const from = fromArg === undefined ? 0 : Number(fromArg);
const to = toArg === undefined ? Infinity : Number(toArg);
const top = topArg === undefined ? 30 : Number(topArg);
const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));

const short = (url: string) => url.replace(/.*node_modules\//, "nm/").replace(/.*\/dist\//, "dist/");
const fnName = (n: ProfileNode) => `${n.callFrame.functionName || "(anon)"} ${short(n.callFrame.url)}:${n.callFrame.lineNumber}`;
const pkg = (n: ProfileNode) =>
  n.callFrame.url.replace(/.*node_modules\/((@[^/]+\/)?[^/]+).*/, "nm:$1").replace(/.*\/dist\/([^/]+\/[^/]+).*/, "dist:$1") || n.callFrame.functionName;

const selfFn = new Map<string, number>();
const selfPkg = new Map<string, number>();
let t = 0;
let busy = 0;
let idle = 0;
for (let i = 0; i < p.samples.length; i++) {
  t += p.timeDeltas[i] ?? 0;
  const s = t / 1e6;
  if (s < from || s > to) continue;
  const n = byId.get(p.samples[i]!)!;
  const d = p.timeDeltas[i + 1] ?? 0;
  if (n.callFrame.functionName === "(idle)") {
    idle += d;
    continue;
  }
  busy += d;
  selfFn.set(fnName(n), (selfFn.get(fnName(n)) ?? 0) + d);
  selfPkg.set(pkg(n), (selfPkg.get(pkg(n)) ?? 0) + d);
}

const ms = (us: number) => (us / 1000).toFixed(0).padStart(7);
const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
console.log(`window ${from}-${to === Infinity ? "end" : to} s: busy ${ms(busy).trim()} ms, idle ${ms(idle).trim()} ms`);
console.log("self time by function (of busy):");
for (const [k, v] of [...selfFn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(v)} ${pct(v)} ${k}`);
console.log("self time by package or file:");
for (const [k, v] of [...selfPkg].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(v)} ${pct(v)} ${k}`);
