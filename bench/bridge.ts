// Bridge benchmark: matrix-otr-irc and Heisenbridge side by side, same Synapse, same IRC server, same users, one run.
//   npm run bench:bridge [-- --users=N] [--seconds=N] [--rates=50,200] [--postgres] [--json[=file]] [--no-heisenbridge]
//                           [--synapse-db=postgres|sqlite] [--max-minutes=N] [--node-args="--cpu-prof ..."] [--metrics-out=file] [--libotr=N] [--heap-snapshot[=after-traffic]]
// Starts its own Synapse (sid chroot, rate limits off), ngIRCd (no per-IP connection limit, no flood penalties), the
// bench's Matrix users (an appservice owning @bench_*), U IRC contacts (half of them OTR: this project's OTR library
// in this process for the bulk, libotr for a sample), then runs the workload (bench/bridge-workload.ts) against our
// bridge (the built CLI, bench/bridge-ours.ts) and, after stopping it, against Heisenbridge (bench/bridge-heisenbridge.ts)
// with plaintext DMs. Prints one table (bench/bridge-report.ts); --json writes it as JSON (to stdout, or to the file).
// Bounded: every phase has a time bound, the whole run a deadline (--max-minutes, default 45), and everything it
// started is stopped at the end or on SIGINT/SIGTERM. Needs `npm run build` (it runs dist/, as operators do).
// This is a measurement, not a test: nothing here asserts a timing.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execFileSync } from "node:child_process";
import { startSynapse, type SynapseInstance } from "../test/harness/synapse.js";
import { startNgircd, type NgircdInstance } from "../test/harness/ngircd.js";
import { startPostgres, type PostgresServer } from "../test/harness/postgres.js";
import { BenchUsers, BENCH_PREFIX, pool } from "./bridge-matrix.js";
import { Inbox } from "./bridge-inbox.js";
import { openContact, prepareOtr, type Contact, type ContactKind } from "./bridge-contacts.js";
import { Ours } from "./bridge-ours.js";
import { Heisenbridge } from "./bridge-heisenbridge.js";
import { runWorkload, type Figures } from "./bridge-workload.js";
import { buildReport, renderReport, type Report } from "./bridge-report.js";
import { scrapeLog } from "./bridge-proc.js";
import type { World } from "./bridge-subject.js";

export interface BenchOptions {
  users: number;
  seconds: number;
  rates: number[];
  postgres: boolean;
  /** Synapse's own database: PostgreSQL (default; Synapse on SQLite saturates at a few dozen events/s) or sqlite. */
  synapseDb: "postgres" | "sqlite";
  heisenbridge: boolean;
  maxMinutes: number;
  /** How many of the OTR contacts are libotr (the rest use src/otr). */
  libotrSample: number;
  nodeArgs: string[];
  /** SIGUSR2 to our bridge after connect or after traffic (give --node-args="--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=DIR"). */
  heapSnapshot: "after-connect" | "after-traffic" | null;
  /** Where the bridge's metrics scrapes of the run go (Prometheus text with timestamps); null: not kept. */
  metricsOut: string | null;
  log: (s: string) => void;
}

const REPO = resolve(new URL("..", import.meta.url).pathname);

export function parseArgs(args: string[]): BenchOptions & { json: string | null } {
  const val = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const num = (name: string, d: number) => (val(name) !== undefined ? Number(val(name)) : d);
  const jsonArg = args.find((a) => a === "--json" || a.startsWith("--json="));
  const users = num("users", 100);
  if (!Number.isInteger(users) || users < 2 || users > 5000) throw new Error("--users must be an integer in 2..5000");
  const json = jsonArg === undefined ? null : jsonArg === "--json" ? "-" : jsonArg.slice(7);
  return {
    users,
    seconds: num("seconds", 20),
    rates: (val("rates") ?? "50,200").split(",").map(Number).filter((x) => x > 0),
    postgres: args.includes("--postgres"),
    synapseDb: val("synapse-db") === "sqlite" ? "sqlite" : "postgres",
    heisenbridge: !args.includes("--no-heisenbridge"),
    maxMinutes: num("max-minutes", 45),
    libotrSample: num("libotr", Math.min(5, Math.floor(users / 2))),
    nodeArgs: (val("node-args") ?? "").split(" ").filter(Boolean),
    heapSnapshot: args.includes("--heap-snapshot") ? "after-connect" : args.includes("--heap-snapshot=after-traffic") ? "after-traffic" : null,
    metricsOut: val("metrics-out") ?? join(tmpdir(), `bench-bridge-metrics-${users}-${process.pid}.prom`),
    json,
    log: (s: string) => (json === "-" ? process.stderr : process.stdout).write(`${new Date().toISOString().slice(11, 19)} ${s}\n`),
  };
}

function checkFdLimit(users: number, log: (s: string) => void): void {
  // Each of: this process (U contacts), ngIRCd (2U), the bridge (U) holds one socket per connection.
  const need = 2 * users + 1000;
  const soft = Number(execFileSync("/bin/sh", ["-c", "ulimit -n"], { encoding: "utf8" }).trim());
  if (Number.isFinite(soft) && soft < need) {
    throw new Error(`open-files limit ${soft} is below ${need} for ${users} users: run under \`ulimit -n ${need}\` (or more)`);
  }
  log(`open-files limit ${soft} (need ${need})`);
}

export async function runBench(o: BenchOptions): Promise<Report> {
  if (!existsSync(join(REPO, "dist/cli.js"))) throw new Error("dist/cli.js missing: run `npm run build` first");
  checkFdLimit(o.users, o.log);
  const deadline = Date.now() + o.maxMinutes * 60_000;
  const remaining = () => Math.max(10_000, deadline - Date.now());
  const dir = mkdtempSync(join(tmpdir(), "motr-bench-bridge-"));
  let hs: SynapseInstance | null = null, irc: NgircdInstance | null = null, pg: PostgresServer | null = null;
  const contacts: Contact[] = [];
  let users: BenchUsers | null = null;
  const stops: Array<() => Promise<void>> = [];
  try {
    prepareOtr();
    irc = await startNgircd({ maxConnectionsIP: 0, pingTimeoutSec: 600, pongTimeoutSec: 300 });
    const inbox = new Inbox();
    users = new BenchUsers("", "localhost");
    const world: World = { hsUrl: "", domain: "localhost", ircHost: irc.host, ircPort: irc.port, users, inbox, dir, homeserverPid: null };
    users.onMessage = (e) => inbox.messages.push(e.room_id, e);
    users.onJoined = (e) => inbox.joins.push(e.state_key!, e);
    const benchReg = join(dir, "bench-registration.yaml");
    await users.start(benchReg);
    if (o.postgres || o.synapseDb === "postgres") pg = await startPostgres();
    const ours = new Ours(world, { postgresUrl: o.postgres && pg ? await pg.newDatabase() : null, nodeArgs: o.nodeArgs });
    await ours.register();
    const owner = `@${BENCH_PREFIX}owner:localhost`;
    const hb = o.heisenbridge ? new Heisenbridge(world, owner) : null;
    await hb?.register();
    const synapseDb = pg && o.synapseDb === "postgres" ? new URL(await pg.newDatabase()) : null;
    hs = await startSynapse({
      registrationPaths: [benchReg, ours.registrationPath, ...(hb ? [hb.registrationPath] : [])],
      ...(synapseDb ? { extraConfig: [
        "database:", "  name: psycopg2", "  allow_unsafe_locale: true", "  args:", `    user: ${synapseDb.username}`,
        `    database: ${synapseDb.pathname.slice(1)}`, `    host: ${synapseDb.hostname}`, `    port: ${synapseDb.port}`,
        "    cp_min: 5", "    cp_max: 10",
      ].join("\n") } : {}),
    });
    users.hsUrl = hs.url;
    world.hsUrl = hs.url;
    world.homeserverPid = homeserverPid(hs);
    o.log(`Synapse ${hs.url} (database ${synapseDb ? "postgres" : "sqlite"}), ngIRCd ${irc.host}:${irc.port}, ${o.users} users, bridge store ${o.postgres ? "postgres" : "sqlite"}`);

    const localparts = [...Array(o.users).keys()].map((i) => `${BENCH_PREFIX}${i}`);
    const ids = localparts.map((l) => users!.userId(l));
    let t = performance.now();
    await pool([...localparts, `${BENCH_PREFIX}owner`], 8, (l) => users!.register(l));
    o.log(`registered ${o.users + 1} Matrix users in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    // Odd indexes are the OTR half; the first few of them are libotr.
    const kinds: ContactKind[] = [...Array(o.users).keys()].map((i) => (i % 2 === 0 ? "plain" : "otr"));
    for (let i = 1, n = 0; i < o.users && n < o.libotrSample; i += 2, n++) kinds[i] = "libotr";
    t = performance.now();
    await pool([...Array(o.users).keys()], 8, async (i) => { contacts[i] = await openContact(irc!.host, irc!.port, `ct${i}`, kinds[i]!); });
    o.log(`${o.users} IRC contacts connected in ${((performance.now() - t) / 1000).toFixed(1)} s ` +
      `(${kinds.filter((k) => k === "otr").length} src/otr, ${kinds.filter((k) => k === "libotr").length} libotr, ${kinds.filter((k) => k === "plain").length} plaintext)`);

    // Four bounded setup phases per bridge; with Heisenbridge to come, ours gets half of the time left, so the
    // run's deadline leaves Heisenbridge as much as ours had.
    const phaseTimeoutMs = (share: number) => Math.min((remaining() * share) / 4, 30 * 60_000);
    await ours.start();
    stops.push(() => ours.stop());
    o.log(`matrix-otr-irc started (pid ${ours.pid}, log ${ours.logPath})`);
    const oursFig = await runWorkload(ours, world, { users: ids, localparts, contacts, otrContacts: kinds.filter((k) => k !== "plain").length, rates: o.rates, seconds: o.seconds,
      phaseTimeoutMs: phaseTimeoutMs(hb ? 0.5 : 1), heapSnapshot: o.heapSnapshot, log: o.log });
    await ours.stop();
    stops.pop();
    if (o.metricsOut) {
      writeFileSync(o.metricsOut, scrapeLog.join("\n") + "\n");
      o.log(`the bridge's metrics scrapes of this run: ${o.metricsOut}`);
    }

    let theirs: Figures | null = null;
    let theirsNote: string | undefined;
    if (hb) {
      if (Date.now() > deadline - 60_000) {
        theirsNote = `Heisenbridge not run: the run's ${o.maxMinutes}-minute bound was used up by our bridge`;
      } else {
        try {
          inbox.clear();
          await hb.startIn(hs.hostDir, `/srv/${hs.hostDir.split("/").at(-1)}`);
          stops.push(() => hb.stop());
          o.log(`Heisenbridge started (pid ${hb.pid}, log ${hb.logPath})`);
          for (const c of contacts) c.peer = ""; // fresh conversations; Heisenbridge's DMs are plaintext
          theirs = await runWorkload(hb, world, { users: ids, localparts, contacts: contacts.map(asPlain), otrContacts: kinds.filter((k) => k !== "plain").length, rates: o.rates,
            seconds: o.seconds, phaseTimeoutMs: phaseTimeoutMs(1), log: o.log });
        } catch (e) {
          theirsNote = `Heisenbridge failed: ${(e as Error).message} (log ${hb.logPath})`;
        }
        await hb.stop();
        stops.pop();
      }
    }
    return buildReport(oursFig, theirs, { store: o.postgres ? "postgres" : "sqlite", seconds: o.seconds, ...(theirsNote ? { theirsNote } : {}) });
  } finally {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    await Promise.all(contacts.filter(Boolean).map((c) => c.close().catch(() => undefined)));
    await users?.stop();
    await hs?.stop();
    await irc?.stop();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Synapse's pid: the process whose command line names this instance's homeserver.yaml (inside the chroot). */
function homeserverPid(hs: SynapseInstance): number | null {
  const conf = `/srv/${hs.hostDir.split("/").at(-1)}/homeserver.yaml`;
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
      if (argv.includes(conf) && argv.some((a) => a.includes("python"))) return Number(d);
    } catch { /* gone */ }
  }
  return null;
}

/** A contact that always sends plaintext (for a bridge that has no OTR), sharing the connection. */
function asPlain(c: Contact): Contact {
  return new Proxy(c, {
    get(target, prop, receiver) {
      if (prop === "send") return (text: string) => target.sendPlain(text);
      if (prop === "kind") return "plain";
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
    set(target, prop, value) { return Reflect.set(target, prop, value); },
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const o = parseArgs(process.argv.slice(2));
  const report = await runBench(o);
  const text = renderReport(report);
  if (o.json === "-") process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  else {
    process.stdout.write(text + "\n");
    if (o.json) { writeFileSync(o.json, JSON.stringify(report, null, 2) + "\n"); o.log(`wrote ${o.json}`); }
  }
  process.exit(0);
}
