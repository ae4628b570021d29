// The table: one row per figure, our bridge, Heisenbridge, the ratio (ours / theirs: below 1 is better for every row
// but the counts), and the targets where one applies (met / NOT met / "-" when it does not apply at this size).
import type { Figures, RateFigures } from "./bridge-workload.js";

export interface Row { figure: string; ours: number | string | null; theirs: number | string | null; ratio: number | null; target: string }
export interface Report { users: number; store: string; seconds: number; rows: Row[]; facts: string[]; errors: Record<string, string[]>; figures: Figures[] }

const MiB = 1048576, KiB = 1024;
const perUser = (f: Figures, which: "afterConnect" | "afterTraffic", k: "rss" | "heap") => {
  const v = f[which][k], base = f.idle[k];
  return v === null || base === null || !f.connected ? null : (v - base) / f.connected / KiB;
};

function fmt(v: number | string | null): string {
  if (v === null || (typeof v === "number" && Number.isNaN(v))) return "n/a";
  if (typeof v === "string") return v;
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
}

export function buildReport(ours: Figures, theirs: Figures | null, o: { store: string; seconds: number; theirsNote?: string }): Report {
  const rows: Row[] = [];
  const add = (figure: string, a: number | string | null, b: number | string | null, target = "") => {
    const ratio = typeof a === "number" && typeof b === "number" && b !== 0 && Number.isFinite(a) && Number.isFinite(b) ? a / b : null;
    rows.push({ figure, ours: a, theirs: b, ratio, target });
  };
  const U = ours.users;
  const t = theirs;
  add("users connected", ours.connected, t?.connected ?? null, ours.connected === U && !ours.errors.length ? "all, no error: met" : "all, no error: NOT met");
  add("DMs open", ours.dms, t?.dms ?? null);
  add("OTR DMs private", `${ours.otrSecure}/${ours.otrWanted}`, t ? "cannot (no OTR)" : null);
  add("setup all users, s", ours.prepareSeconds, t?.prepareSeconds ?? null);
  add("connect all users, s", ours.connectSeconds, t?.connectSeconds ?? null);
  add("open DMs (+ OTR AKEs), s", ours.dmSeconds, t?.dmSeconds ?? null);
  add("RSS idle, MiB", ours.idle.rss / MiB, t ? t.idle.rss / MiB : null);
  const rssC = ours.afterConnect.rss / MiB, rssT = ours.afterTraffic.rss / MiB;
  const gib = U >= 5000 ? (Math.max(rssC, rssT) < 1024 ? "< 1 GiB at 5,000: met" : "< 1 GiB at 5,000: NOT met") : "";
  add("RSS after connect, MiB", rssC, t ? t.afterConnect.rss / MiB : null, gib);
  add("RSS after traffic, MiB", rssT, t ? t.afterTraffic.rss / MiB : null, gib);
  const half = (a: number | null, b: number | null) => (a === null || b === null ? "" : a <= b / 2 ? "<= half of theirs: met" : "<= half of theirs: NOT met");
  const pc = perUser(ours, "afterConnect", "rss"), pt = perUser(ours, "afterTraffic", "rss");
  const tc = t ? perUser(t, "afterConnect", "rss") : null, tt = t ? perUser(t, "afterTraffic", "rss") : null;
  add("RSS per user after connect, KiB", pc, tc, half(pc, tc));
  add("RSS per user after traffic, KiB", pt, tt, half(pt, tt));
  add("JS heap per user after connect, KiB", perUser(ours, "afterConnect", "heap"), t ? "n/a (Python)" : null);
  add("JS heap per user after traffic, KiB", perUser(ours, "afterTraffic", "heap"), t ? "n/a (Python)" : null);
  for (const r of ours.rates) {
    const tr: RateFigures | undefined = t?.rates.find((x) => x.rate === r.rate);
    const p = `@${r.rate}/s`;
    add(`${p} delivered / sent`, `${r.delivered}/${r.sent}`, tr ? `${tr.delivered}/${tr.sent}` : null);
    const latHalf = (a: number, b: number | undefined) => (b === undefined ? "" : a <= b / 2 ? "<= half of theirs: met" : "<= half of theirs: NOT met");
    add(`${p} IRC->Matrix p50, ms`, r.i2m.p50, tr?.i2m.p50 ?? null, latHalf(r.i2m.p50, tr?.i2m.p50));
    add(`${p} IRC->Matrix p99, ms`, r.i2m.p99, tr?.i2m.p99 ?? null, latHalf(r.i2m.p99, tr?.i2m.p99));
    add(`${p} IRC->Matrix max, ms`, r.i2m.max, tr?.i2m.max ?? null);
    add(`${p} Matrix->IRC p50, ms`, r.m2i.p50, tr?.m2i.p50 ?? null, latHalf(r.m2i.p50, tr?.m2i.p50));
    add(`${p} Matrix->IRC p99, ms`, r.m2i.p99, tr?.m2i.p99 ?? null, latHalf(r.m2i.p99, tr?.m2i.p99));
    add(`${p} Matrix->IRC max, ms`, r.m2i.max, tr?.m2i.max ?? null);
    const b20 = (x: { p99: number } | null) => (r.rate >= 200 && x ? (x.p99 < 20 ? "< 20 ms: met" : "< 20 ms: NOT met") : "");
    add(`${p} bridge-added IRC->Matrix p50/p99, ms`, r.i2mBridge ? `${fmt(r.i2mBridge.p50)}/${fmt(r.i2mBridge.p99)}` : null,
      t ? "n/a (no own timestamps)" : null, b20(r.i2mBridge));
    add(`${p} bridge-added Matrix->IRC p50/p99, ms`, r.m2iBridge ? `${fmt(r.m2iBridge.p50)}/${fmt(r.m2iBridge.p99)}` : null,
      t ? "n/a (no own timestamps)" : null, b20(r.m2iBridge));
    add(`${p} bridge until homeserver answered IRC->Matrix p50/p99, ms`,
      r.i2mBridgeDelivered ? `${fmt(r.i2mBridgeDelivered.p50)}/${fmt(r.i2mBridgeDelivered.p99)}` : null, t ? "n/a (no own timestamps)" : null);
    add(`${p} CPU s per 1000 messages`, r.cpuPer1000, tr?.cpuPer1000 ?? null);
    add(`${p} (Synapse CPU s per 1000 messages)`, r.hsCpuPer1000, tr?.hsCpuPer1000 ?? null);
    add(`${p} event-loop lag p99, ms`, r.loopLagP99Ms, t ? "n/a (Python)" : null,
      r.loopLagP99Ms === null ? "" : r.loopLagP99Ms < 50 ? "< 50 ms: met" : "< 50 ms: NOT met");
  }
  const facts = [...ours.facts, ...(t?.facts ?? [])];
  if (o.theirsNote) facts.push(o.theirsNote);
  return { users: U, store: o.store, seconds: o.seconds, rows, facts, errors: { ours: ours.errors, ...(t ? { theirs: t.errors } : {}) }, figures: [ours, ...(t ? [t] : [])] };
}

export function renderReport(r: Report): string {
  const head = ["figure", "matrix-otr-irc", "heisenbridge", "ours/theirs", "target"];
  const body = r.rows.map((x) => [x.figure, fmt(x.ours), fmt(x.theirs), x.ratio === null ? "" : x.ratio.toFixed(2), x.target]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ").trimEnd();
  const out = [`bridge bench: U=${r.users} users (half the DMs OTR for ours), store ${r.store}, ${r.seconds} s of traffic per rate`,
    line(head), line(w.map((n) => "-".repeat(n))), ...body.map(line)];
  if (r.facts.length) out.push("", "facts:", ...r.facts.map((f) => `  - ${f}`));
  for (const [who, errs] of Object.entries(r.errors)) if (errs.length) out.push("", `errors (${who}):`, ...errs.map((e) => `  - ${e}`));
  return out.join("\n");
}
