// What the bench reads about a bridge process from outside: RSS and CPU time from /proc (the same for Node and
// Python), and for our bridge its Prometheus text (JS heap, event-loop lag, the bridge's own latency histogram).
// Plus the small statistics the table needs: percentiles of a sample and of a histogram's bucket deltas.
import { readFileSync } from "node:fs";

const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux x86-64

export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** User + system CPU seconds the process has used, its threads included. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields from 3 (state) on
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime (14), stime (15)
}

export type Samples = Map<string, number>;

/**
 * Every scrape the bench makes, kept in Prometheus text format with a millisecond timestamp on each sample and the
 * phase as a comment, so a run can be replayed into a TSDB (e.g. promtool tsdb create-blocks-from openmetrics after
 * conversion) and looked at in Grafana next to contrib/grafana-dashboard.json.
 */
export const scrapeLog: string[] = [];
let scrapePhase = "start";
export function setScrapePhase(p: string): void { scrapePhase = p; }

/** Prometheus text format -> "name{labels}" -> value (labels as written by prom-client, in its order). */
export async function scrape(url: string): Promise<Samples> {
  const text = await (await fetch(url, { signal: AbortSignal.timeout(30_000) })).text();
  const now = Date.now();
  scrapeLog.push(`# bench phase ${scrapePhase} at ${new Date(now).toISOString()}`,
    ...text.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => `${l} ${now}`));
  const out: Samples = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** One sample by metric name and a label subset, e.g. metric(s, "nodejs_heap_size_used_bytes"). */
export function metric(s: Samples, name: string, labels: Record<string, string> = {}): number {
  for (const [k, v] of s) {
    const brace = k.indexOf("{");
    if ((brace < 0 ? k : k.slice(0, brace)) !== name) continue;
    if (Object.entries(labels).every(([l, val]) => k.includes(`${l}="${val}"`))) return v;
  }
  return NaN;
}

/**
 * Quantiles of a histogram over the window between two scrapes: bucket counts are differenced, then each quantile is
 * interpolated linearly inside its bucket (as Prometheus' histogram_quantile does). Returns null when nothing landed.
 */
export function histogramQuantiles(before: Samples, after: Samples, name: string, labels: Record<string, string>, qs: number[]):
  { count: number; q: number[]; maxBucket: number } | null {
  const buckets: Array<{ le: number; n: number }> = [];
  for (const [k, v] of after) {
    if (!k.startsWith(`${name}_bucket{`)) continue;
    if (!Object.entries(labels).every(([l, val]) => k.includes(`${l}="${val}"`))) continue;
    const le = /le="([^"]+)"/.exec(k)![1]!;
    buckets.push({ le: le === "+Inf" ? Infinity : Number(le), n: v - (before.get(k) ?? 0) });
  }
  buckets.sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.n ?? 0;
  if (!total) return null;
  const q = qs.map((quant) => {
    const rank = quant * total;
    let prevLe = 0, prevN = 0;
    for (const b of buckets) {
      if (b.n >= rank) {
        if (b.le === Infinity) return prevLe;
        return prevLe + (b.le - prevLe) * ((rank - prevN) / Math.max(1, b.n - prevN));
      }
      prevLe = b.le; prevN = b.n;
    }
    return prevLe;
  });
  const top = buckets.find((b) => b.n === total)!;
  return { count: total, q, maxBucket: top.le };
}

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export function summarize(xs: number[]): { n: number; p50: number; p99: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 0.5), p99: percentile(s, 0.99), max: s.at(-1) ?? NaN };
}
