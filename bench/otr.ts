// OTR benchmark: our engine and libotr 4.1.1 side by side, in one run, on the same machine.
//   npm run bench:otr [-- --json[=file]] [--seconds=N] [--sessions=N] [--keygens=N]
// Figures: DSA keygen time, AKE sessions/s (a fresh pair of conversations each time, keys preloaded),
// data messages/s (200-byte messages alternating direction, so DH keys rotate every turn), SMP runs/s, and
// bytes of memory per established session (1,000 sessions held, both endpoints counted, divided by 2).
// libotr runs in the C helper's bench mode (test/libotr-helper/otr-helper bench): two libotr endpoints in one
// process, the same loops in C, memory from mallinfo2() deltas. Ours runs in this process; memory is the
// heap + external delta after global.gc(), so node is re-run with --expose-gc if needed.
// This is a measurement, not a test: nothing here asserts a timing.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { OtrAccount, OtrConversation, POLICY, generateDsaKey, type OtrEvent, type OtrResult } from "../src/otr/index.js";
import { helperBench } from "../test/harness/libotr.js";

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.split("=")[1]) : dflt;
};

if (typeof globalThis.gc !== "function") {
  const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", fileURLToPath(import.meta.url), ...args], { stdio: "inherit" });
  process.exit(r.status ?? 1);
}
const gc = globalThis.gc as () => void;

const SECONDS = opt("seconds", 3);
const SESSIONS = opt("sessions", 1000);
const KEYGENS = opt("keygens", 10);
const jsonArg = args.find((a) => a === "--json" || a.startsWith("--json="));
const log = (s: string) => (jsonArg === "--json" ? process.stderr : process.stdout).write(s + "\n");

// ---------------------------------------------------------------- ours

const aliceKey = generateDsaKey(), bobKey = generateDsaKey();
const alice = new OtrAccount({ privateKey: aliceKey, instanceTag: 0x1000_0001, policy: POLICY.MANUAL });
const bob = new OtrAccount({ privateKey: bobKey, instanceTag: 0x2000_0002, policy: POLICY.MANUAL });

class Pair {
  readonly a: OtrConversation;
  readonly b: OtrConversation;
  readonly aEvents: OtrEvent[] = [];
  readonly bEvents: OtrEvent[] = [];
  constructor(i = 0) {
    this.a = new OtrConversation(alice, `bob_${i}`);
    this.b = new OtrConversation(bob, `alice_${i}`);
  }
  /** Routes lines until both sides are quiet. */
  run(from: "a" | "b", r: OtrResult): void {
    (from === "a" ? this.aEvents : this.bEvents).push(...r.events);
    let qa: string[] = from === "b" ? [...r.toSend] : []; // lines for a
    let qb: string[] = from === "a" ? [...r.toSend] : []; // lines for b
    while (qa.length || qb.length) {
      const nb: string[] = [], na: string[] = [];
      for (const l of qb) { const x = this.b.receive(l); this.bEvents.push(...x.events); na.push(...x.toSend); }
      for (const l of qa) { const x = this.a.receive(l); this.aEvents.push(...x.events); nb.push(...x.toSend); }
      qa = na; qb = nb;
    }
  }
  take(): { a: OtrEvent[]; b: OtrEvent[] } { return { a: this.aEvents.splice(0), b: this.bEvents.splice(0) }; }
  ake(): void {
    this.run("a", this.a.startAke());
    const { a, b } = this.take();
    if (!a.some((e) => e.type === "gone-secure") || !b.some((e) => e.type === "gone-secure")) {
      throw new Error(`bench: AKE failed: ${JSON.stringify({ a, b })}`);
    }
  }
}

function timed(seconds: number, step: () => number): number {
  let n = 0;
  const t0 = performance.now();
  let t = 0;
  do { n += step(); t = (performance.now() - t0) / 1000; } while (t < seconds);
  return n / t;
}

function oursKeygenMs(): number {
  const t0 = performance.now();
  for (let i = 0; i < KEYGENS; i++) generateDsaKey();
  return (performance.now() - t0) / KEYGENS;
}

function oursAke(): number {
  return timed(SECONDS, () => { new Pair().ake(); return 1; });
}

function oursData(): number {
  const p = new Pair();
  p.ake();
  const msg = "x".repeat(200);
  return timed(SECONDS, () => {
    p.run("a", p.a.send(msg));
    p.run("b", p.b.send(msg));
    const { a, b } = p.take();
    const ra = a.filter((e) => e.type === "received"), rb = b.filter((e) => e.type === "received");
    if (ra.length !== 1 || rb.length !== 1) throw new Error(`bench: data message lost: ${JSON.stringify({ a, b })}`);
    return 2;
  });
}

function oursSmp(): number {
  const p = new Pair();
  p.ake();
  const secret = new TextEncoder().encode("correct horse battery staple");
  return timed(SECONDS, () => {
    p.run("a", p.a.smpStart(secret));
    const { b } = p.take();
    if (!b.some((e) => e.type === "smp-ask")) throw new Error(`bench: no smp-ask: ${JSON.stringify(b)}`);
    p.run("b", p.b.smpRespond(secret));
    const t = p.take();
    if (!t.a.some((e) => e.type === "smp-success") || !t.b.some((e) => e.type === "smp-success")) {
      throw new Error(`bench: SMP failed: ${JSON.stringify(t)}`);
    }
    return 1;
  });
}

function oursMemory(): { pair: number; perSession: number } {
  const used = () => { const m = process.memoryUsage(); return m.heapUsed + m.external; };
  gc(); gc();
  const before = used();
  const held: Pair[] = [];
  for (let i = 0; i < SESSIONS; i++) { const p = new Pair(i + 1); p.ake(); held.push(p); }
  gc(); gc();
  const pair = (used() - before) / SESSIONS;
  if (held.length !== SESSIONS) throw new Error("unreachable");
  return { pair, perSession: pair / 2 };
}

// ---------------------------------------------------------------- run

const keydir = mkdtempSync(join(tmpdir(), "otr-bench-"));
try {
  log(`OTR bench: ${SECONDS}s per rate, ${SESSIONS} sessions for memory, ${KEYGENS} keygens (machine is shared: figures are noisy)`);
  const libEnv = { OTR_BENCH_SECONDS: String(SECONDS), OTR_BENCH_SESSIONS: String(SESSIONS), OTR_BENCH_KEYGENS: String(KEYGENS), OTR_BENCH_KEYDIR: keydir };
  // Metric by metric, libotr then ours right after it: the two never compete for the CPU, and both see about
  // the same background load of this shared machine.
  const lib: Record<string, number | string> = {};
  const runLib = (what: string) => Object.assign(lib, helperBench([what], libEnv));
  runLib("keygen");
  const keygen_ms = oursKeygenMs();
  runLib("ake");
  const ake_per_s = oursAke();
  runLib("data");
  const data_msgs_per_s = oursData();
  runLib("smp");
  const smp_per_s = oursSmp();
  runLib("mem");
  const bytes_per_session = oursMemory().perSession;
  const ours = { keygen_ms, ake_per_s, data_msgs_per_s, smp_per_s, bytes_per_session };
  type Row = { key: keyof typeof ours; label: string; better: "higher" | "lower"; target: string; unit: string };
  const rows: Row[] = [
    { key: "keygen_ms", label: "DSA-1024 keygen", better: "lower", target: "", unit: "ms" },
    { key: "ake_per_s", label: "AKE sessions/s", better: "higher", target: ">= 2x", unit: "/s" },
    { key: "data_msgs_per_s", label: "data msgs/s (200 B, alternating)", better: "higher", target: ">= 2x", unit: "/s" },
    { key: "smp_per_s", label: "SMP runs/s", better: "higher", target: ">= 3x", unit: "/s" },
    { key: "bytes_per_session", label: "bytes per established session", better: "lower", target: "<= 1/5", unit: "B" },
  ];
  const out: Record<string, { ours: number; libotr: number; ratio: number }> = {};
  log("");
  log(`${"".padEnd(36)}${"ours".padStart(12)}${"libotr".padStart(12)}   ours/libotr  target`);
  for (const r of rows) {
    const o = ours[r.key], l = Number(lib[r.key]);
    const ratio = o / l;
    out[r.key] = { ours: round(o), libotr: round(l), ratio: round(ratio, 3) };
    const met = r.target === "" ? "" : r.key === "bytes_per_session" ? (ratio <= 0.2 ? "met" : "MISSED")
      : ratio >= parseFloat(r.target.replace(/[^0-9.]/g, "")) ? "met" : "MISSED";
    log(`${r.label.padEnd(36)}${fmt(o, r.unit).padStart(12)}${fmt(l, r.unit).padStart(12)}   ${ratio.toFixed(2).padStart(8)}x    ${r.target} ${met}`);
  }
  log(`\nlibotr ${lib.libotr}; memory counts both endpoints of each session / 2 (libotr pair: ${lib.bytes_per_session_pair} B)`);
  if (jsonArg) {
    const json = JSON.stringify({ ...out, seconds: SECONDS, sessions: SESSIONS, node: process.version, libotr: lib.libotr }, null, 2);
    if (jsonArg === "--json") process.stdout.write(json + "\n");
    else writeFileSync(jsonArg.slice("--json=".length), json + "\n");
  }
} finally {
  rmSync(keydir, { recursive: true, force: true });
}

function round(n: number, d = 2): number { const f = 10 ** d; return Math.round(n * f) / f; }
function fmt(n: number, unit: string): string {
  return unit === "B" ? `${Math.round(n).toLocaleString("en")} B` : unit === "ms" ? `${n.toFixed(1)} ms` : n.toFixed(1);
}
