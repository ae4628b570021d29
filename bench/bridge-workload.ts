// The workload, the same for every bridge under test: U Matrix users set up and connect (the connect is timed),
// each gets a DM with its own IRC contact (opened from IRC, as a contact writing first), half of those go private
// with OTR when the bridge can, then messages flow at fixed rates across all users, alternating IRC->Matrix and
// Matrix->IRC, each carrying a sequence number so both ends can be matched. Memory is read idle, after connect and
// after traffic; CPU over each rate window; the bridge's own figures (heap, event-loop lag, bridge-added latency)
// from its metrics when it has them. Every wait is bounded; whatever did not finish in time is counted, not awaited.
import type { Contact } from "./bridge-contacts.js";
import type { BenchEvent } from "./bridge-matrix.js";
import { pool } from "./bridge-matrix.js";
import { bodyOf } from "./bridge-inbox.js";
import { cpuSeconds, histogramQuantiles, metric, rssBytes, scrape, setScrapePhase, summarize, type Samples } from "./bridge-proc.js";
import type { Subject, World } from "./bridge-subject.js";

export interface Mem { rss: number; heap: number | null }
export interface Lat { n: number; p50: number; p99: number; max: number }
export interface RateFigures {
  rate: number;
  seconds: number;
  sent: number;
  delivered: number;
  lost: number;
  sendErrors: number;
  i2m: Lat;
  m2i: Lat;
  /** Bridge-added latency (ms) from the bridge's own handoff histogram; null when it has none. */
  i2mBridge: { p50: number; p99: number } | null;
  m2iBridge: { p50: number; p99: number } | null;
  /** IRC->Matrix inside the bridge until the homeserver answered the send (its latency histogram), ms. */
  i2mBridgeDelivered: { p50: number; p99: number } | null;
  /** The homeserver's CPU seconds per 1000 messages in the same window (context: it is shared by both bridges). */
  hsCpuPer1000: number | null;
  cpuPer1000: number;
  loopLagP99Ms: number | null;
}
export interface Figures {
  bridge: string;
  users: number;
  otrWanted: number;
  prepared: number;
  connected: number;
  dms: number;
  otrSecure: number;
  prepareSeconds: number;
  connectSeconds: number;
  dmSeconds: number;
  idle: Mem;
  afterConnect: Mem;
  afterTraffic: Mem;
  rates: RateFigures[];
  errors: string[];
  facts: string[];
}

export interface WorkloadOptions {
  users: string[]; // Matrix user ids, index i talks to contacts[i]
  localparts: string[];
  contacts: Contact[];
  /** How many contacts would speak OTR (for a bridge without OTR: said as a fact). */
  otrContacts: number;
  rates: number[];
  seconds: number;
  /** Upper bound for each setup phase (prepare, connect, DMs, AKEs). */
  phaseTimeoutMs: number;
  /** After that memory read: SIGUSR2 to the bridge (a heap snapshot with --heapsnapshot-signal). */
  heapSnapshot?: "after-connect" | "after-traffic" | null;
  log: (s: string) => void;
}

const SEQ_RE = /bench#(\d+)\b/;
const FILLER = "the quick brown fox jumps over the lazy dog";
const SETTLE_TIMEOUT_MS = 300_000;
const GRACE_MS = 30_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * RSS once the process has been quiet long enough for its allocator to hand back what the phase before freed:
 * V8 keeps freed heap pages resident in a pool until its memory reducer runs, some 8 s into quiet (bench:e2ee
 * measured +160 MB of pooled pages right after a setup). Both bridges get the same wait: at least 12 s, then
 * until RSS stops falling, at most 60 s.
 */
async function settledRss(pid: number): Promise<number> {
  const start = Date.now();
  let last = rssBytes(pid);
  for (;;) {
    await sleep(2_000);
    const rss = rssBytes(pid);
    if ((Date.now() - start >= 12_000 && last - rss < 1024 * 1024) || Date.now() - start > 60_000) return rss;
    last = rss;
  }
}

async function memory(s: Subject): Promise<Mem> {
  const rss = await settledRss(s.pid);
  if (!s.metricsUrl) return { rss, heap: null };
  return { rss, heap: metric(await scrape(s.metricsUrl), "nodejs_heap_size_used_bytes") };
}

/** Runs `f` for each index, `limit` at a time, until `deadline`; returns which indexes succeeded. */
async function phase(n: number, limit: number, timeoutMs: number, errors: string[], what: string, f: (i: number) => Promise<void>): Promise<boolean[]> {
  const ok = new Array<boolean>(n).fill(false);
  const deadline = Date.now() + timeoutMs;
  let firstError: string | null = null, failures = 0, skipped = 0;
  await pool([...Array(n).keys()], limit, async (i) => {
    if (Date.now() > deadline) { skipped++; return; }
    try { await f(i); ok[i] = true; } catch (e) { failures++; firstError ??= (e as Error).message; }
  });
  if (failures) errors.push(`${what}: ${failures} failed (first: ${firstError})`);
  if (skipped) errors.push(`${what}: ${skipped} not tried, phase bound of ${Math.round(timeoutMs / 1000)} s reached`);
  return ok;
}

async function heapSnapshot(s: Subject, log: (m: string) => void): Promise<void> {
  process.kill(s.pid, "SIGUSR2");
  log("SIGUSR2 sent for a heap snapshot; waiting 60 s for it to be written");
  await sleep(60_000);
}

export async function runWorkload(s: Subject, w: World, o: WorkloadOptions): Promise<Figures> {
  const U = o.users.length;
  const errors: string[] = [], facts: string[] = [];
  const log = (m: string) => o.log(`[${s.name}] ${m}`);
  await sleep(2000);
  setScrapePhase("idle");
  const idle = await memory(s);
  log(`idle: RSS ${(idle.rss / 1048576).toFixed(1)} MiB`);

  let t = performance.now();
  const prepared = await phase(U, 16, o.phaseTimeoutMs, errors, "setup (management/control rooms)", (i) => s.prepare(o.users[i]!));
  const prepareSeconds = (performance.now() - t) / 1000;
  log(`setup: ${prepared.filter(Boolean).length}/${U} in ${prepareSeconds.toFixed(1)} s`);

  t = performance.now();
  const connected = await phase(U, 64, o.phaseTimeoutMs, errors, "connect", async (i) => {
    if (!prepared[i]) throw new Error("not set up");
    await s.connect(o.users[i]!);
  });
  const connectSeconds = (performance.now() - t) / 1000;
  const nConnected = connected.filter(Boolean).length;
  log(`connect: ${nConnected}/${U} in ${connectSeconds.toFixed(1)} s`);

  // DMs, opened from IRC: the contact writes first, the bridge invites the user, the user joins.
  const dmRoom = new Array<string | null>(U).fill(null);
  t = performance.now();
  const dmOk = await phase(U, 32, o.phaseTimeoutMs, errors, "DM rooms", async (i) => {
    if (!connected[i]) throw new Error("not connected");
    const c = o.contacts[i]!;
    c.peer = s.puppetNick(o.localparts[i]!);
    const own = s.ownRooms(o.users[i]!);
    const joined = w.inbox.joined(o.users[i]!, (e) => !own.has(e.room_id) && e.roomType !== "m.space", 180_000, `DM invite for ${o.users[i]}`);
    c.sendPlain(`hello from ${c.nick}`);
    dmRoom[i] = (await joined).room_id;
  });
  const nDms = dmOk.filter(Boolean).length;
  const otrWanted = s.otr ? o.contacts.filter((c, i) => c.kind !== "plain" && dmOk[i]).length : 0;
  let nSecure = 0;
  if (s.otr) {
    const secure = await phase(U, 16, o.phaseTimeoutMs, errors, "OTR AKEs", async (i) => {
      if (!dmOk[i] || o.contacts[i]!.kind === "plain") return;
      await o.contacts[i]!.startOtr(180_000);
    });
    nSecure = secure.filter((x, i) => x && dmOk[i] && o.contacts[i]!.kind !== "plain").length;
  } else {
    facts.push(`${s.name} cannot speak OTR: the ${o.otrContacts} DMs that are OTR with our bridge ran in plaintext with it`);
  }
  const dmSeconds = (performance.now() - t) / 1000;
  log(`DMs: ${nDms}/${U}, OTR private ${nSecure}/${otrWanted}, in ${dmSeconds.toFixed(1)} s`);
  await sleep(3000);
  setScrapePhase("after-connect");
  const afterConnect = await memory(s);
  if (o.heapSnapshot === "after-connect") await heapSnapshot(s, log);

  // Traffic: only the DMs that are fully up take part (the OTR ones when private).
  const active = [...Array(U).keys()].filter((i) => dmOk[i] && (!s.otr || o.contacts[i]!.kind === "plain" || o.contacts[i]!.secure));
  const rates: RateFigures[] = [];
  let seq = 0;
  const pending = new Map<number, { t0: number; dir: "i2m" | "m2i" }>();
  const lat = { i2m: [] as number[], m2i: [] as number[] };
  const arrived = (body: string, dir: "i2m" | "m2i", at: number) => {
    const m = SEQ_RE.exec(body);
    if (!m) return;
    const p = pending.get(Number(m[1]));
    if (!p || p.dir !== dir) return;
    pending.delete(Number(m[1]));
    lat[dir].push(at - p.t0);
  };
  const prevOnMessage = w.users.onMessage;
  w.users.onMessage = (e: BenchEvent, at: number) => { arrived(bodyOf(e), "i2m", at); prevOnMessage(e, at); };
  for (const c of o.contacts) c.onText = (text, at) => arrived(text, "m2i", at);
  try {
    // Settle: the setup leaves queues behind (the homeserver's pushes to each appservice, the bridge's sends); a
    // message each way on one DM must make it through before a rate is measured, or the first window measures the
    // backlog. Bounded like every phase; what it took is logged.
    if (active.length) {
      const t0 = performance.now();
      const i = active[0]!;
      const ok = await Promise.all(["i2m", "m2i"].map(async (dir) => {
        const n = seq++;
        pending.set(n, { t0: performance.now(), dir: dir as "i2m" | "m2i" });
        if (dir === "i2m") o.contacts[i]!.send(`bench#${n} settle`);
        else await w.users.sendText(o.users[i]!, dmRoom[i]!, `bench#${n} settle`).catch(() => undefined);
        const end = performance.now() + SETTLE_TIMEOUT_MS;
        while (pending.has(n) && performance.now() < end) await sleep(50);
        return !pending.has(n);
      }));
      pending.clear();
      if (ok.every(Boolean)) log(`settled: a message each way went through in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      else errors.push(`settle: a message each way did not go through within ${SETTLE_TIMEOUT_MS / 1000} s; the rates measure a backlog`);
    }
    for (const rate of o.rates) {
      if (!active.length) { errors.push(`traffic at ${rate}/s: no DM is up`); continue; }
      pending.clear(); lat.i2m = []; lat.m2i = [];
      let sendErrors = 0, sent = 0;
      setScrapePhase(`traffic-${rate}-start`);
      const before: Samples | null = s.metricsUrl ? await scrape(s.metricsUrl) : null;
      const cpu0 = cpuSeconds(s.pid);
      const hsCpu0 = w.homeserverPid ? cpuSeconds(w.homeserverPid) : 0;
      const t0 = performance.now();
      const sendOne = () => {
        const n = seq++;
        const i = active[(n >> 1) % active.length]!;
        const body = `bench#${n} ${FILLER}`;
        if (n % 2 === 0) {
          pending.set(n, { t0: performance.now(), dir: "i2m" });
          o.contacts[i]!.send(body);
        } else {
          pending.set(n, { t0: performance.now(), dir: "m2i" });
          w.users.sendText(o.users[i]!, dmRoom[i]!, body).catch(() => { sendErrors++; pending.delete(n); });
        }
        sent++;
      };
      while (performance.now() - t0 < o.seconds * 1000) {
        const due = Math.floor((rate * (performance.now() - t0)) / 1000);
        while (sent < due) sendOne();
        await sleep(2);
      }
      const graceEnd = performance.now() + GRACE_MS;
      while (pending.size && performance.now() < graceEnd) await sleep(20);
      const cpu = cpuSeconds(s.pid) - cpu0;
      setScrapePhase(`traffic-${rate}-end`);
      const after: Samples | null = s.metricsUrl ? await scrape(s.metricsUrl) : null;
      const hsCpu = w.homeserverPid ? cpuSeconds(w.homeserverPid) - hsCpu0 : NaN;
      const bridgeQ = (direction: string, name = "matrix_otr_irc_message_bridge_handoff_seconds") => {
        if (!before || !after) return null;
        const h = histogramQuantiles(before, after, name, { direction }, [0.5, 0.99]);
        return h ? { p50: h.q[0]! * 1000, p99: h.q[1]! * 1000 } : null;
      };
      const r: RateFigures = {
        rate, seconds: o.seconds, sent, delivered: lat.i2m.length + lat.m2i.length, lost: pending.size, sendErrors,
        i2m: summarize(lat.i2m), m2i: summarize(lat.m2i),
        i2mBridge: bridgeQ("irc_to_matrix"), m2iBridge: bridgeQ("matrix_to_irc"),
        i2mBridgeDelivered: bridgeQ("irc_to_matrix", "matrix_otr_irc_message_bridge_latency_seconds"),
        hsCpuPer1000: Number.isFinite(hsCpu) ? (hsCpu / Math.max(1, sent)) * 1000 : null,
        cpuPer1000: (cpu / Math.max(1, sent)) * 1000,
        loopLagP99Ms: after ? metric(after, "nodejs_eventloop_lag_p99_seconds") * 1000 : null,
      };
      if (sendErrors) errors.push(`traffic at ${rate}/s: ${sendErrors} Matrix sends failed`);
      if (r.lost) errors.push(`traffic at ${rate}/s: ${r.lost} of ${sent} messages not delivered within ${GRACE_MS / 1000} s after the window`);
      log(`${rate}/s: ${r.delivered}/${sent} delivered, i2m p50 ${r.i2m.p50.toFixed(1)} ms p99 ${r.i2m.p99.toFixed(1)} ms, ` +
        `m2i p50 ${r.m2i.p50.toFixed(1)} ms p99 ${r.m2i.p99.toFixed(1)} ms, CPU ${r.cpuPer1000.toFixed(2)} s/1000`);
      rates.push(r);
    }
  } finally {
    w.users.onMessage = prevOnMessage;
    for (const c of o.contacts) c.onText = () => undefined;
  }
  await sleep(3000);
  setScrapePhase("after-traffic");
  const afterTraffic = await memory(s);
  if (o.heapSnapshot === "after-traffic") await heapSnapshot(s, log);
  return {
    bridge: s.name, users: U, otrWanted, prepared: prepared.filter(Boolean).length, connected: nConnected, dms: nDms, otrSecure: nSecure,
    prepareSeconds, connectSeconds, dmSeconds, idle, afterConnect, afterTraffic, rates, errors, facts,
  };
}
