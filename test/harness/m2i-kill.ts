// Matrix → IRC at least once (issue 15), shared by the SQLite and PostgreSQL e2e files: the real executable
// (`start`, a child process) against Synapse and ngIRCd (behind a TCP tap), Alice on Matrix in a plain DM with Bob,
// a plain IRC client. A strict flood budget (one line per LINE_INTERVAL_MS) makes Alice's 200 numbered messages
// queue up in the bridge; it is SIGKILLed `kills` times while they are in flight and restarted on the same store
// each time. Bob must get all 200, in order; a message may come twice only for the line the IRC server took just
// before a kill (docs/store.md "Matrix → IRC delivery"), so duplicates are counted and at most one per kill.
// After a planned stop the inbox holds no message body, and (SQLite) no file of the store holds a message's text.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import pg from "pg";
import type { SynapseInstance } from "./synapse.js";
import type { NgircdInstance } from "./ngircd.js";
import type { PostgresServer } from "./postgres.js";
import type { TcpTap } from "./tcp-tap.js";
import type { MatrixClient } from "./matrix-client.js";
import { IrcClient } from "./irc-client.js";
import { tempDir } from "./proc.js";
import { aliceConnected, killDaemonConfig, prepareDaemonDir, startCliDaemon, startKillWorldParts, stopCliDaemon } from "./cli-daemon.js";

const LONG = 120_000;
const root = fileURLToPath(new URL("../..", import.meta.url));
const ALICE = "@alice:localhost";
const GHOST = "@irc_local_bob:localhost";
const MESSAGES = 200;
const LINE_INTERVAL_MS = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const text = (n: number) => `m2i ${String(n).padStart(3, "0")}`;

export interface M2iKillOptions {
  engine: "sqlite" | "postgres";
  kills: number;
}

export function m2iKillScenario(o: M2iKillOptions): void {
  describe(`SIGKILL while ${MESSAGES} Matrix messages are in flight to IRC, ${o.engine} store (${o.kills} kills)`, { timeout: 600_000 }, () => {
    let hs: SynapseInstance;
    let irc: NgircdInstance;
    let tap: TcpTap;
    let pgServer: PostgresServer | undefined;
    let pgUrl = "";
    let child: ChildProcess | null = null;
    let alice: MatrixClient;
    let bob: IrcClient;
    let room = "";
    let dir = "";
    let asPort = 0;
    let metricsPort = 0;
    let log = "";
    const rand = (() => {
      const seed = process.env.M2I_KILL_SEED ?? String(Date.now());
      let i = 0;
      console.log(`# m2i-kill seed ${seed} (M2I_KILL_SEED=${seed} replays it)`);
      return () => createHash("sha256").update(`${seed}/${i++}`).digest().readUInt32BE(0) / 2 ** 32;
    })();
    const figures = { kills: 0, sent: 0, delivered: 0, duplicates: 0, lost: 0, handedOnAgain: 0, wireLines: 0, hsReordered: 0, killedAt: [] as number[] };

    const config = (hsUrl: string) => killDaemonConfig({
      hsUrl, parts: { irc, tap, pgServer, pgUrl, asPort, metricsPort }, engine: o.engine, dir, user: ALICE,
      networkExtra: `flood_burst_lines: 1, flood_line_interval_ms: ${LINE_INTERVAL_MS}`, otr: "{ default_policy: never }", logLevel: "debug",
    });

    async function startDaemon(): Promise<void> {
      await startCliDaemon({ root, dir, metricsPort, onSpawn: (c) => (child = c), onStderr: (t) => (log += t), logTail: () => log });
    }

    async function stopDaemon(signal: NodeJS.Signals): Promise<number | null> {
      const code = await stopCliDaemon(child!, signal);
      child = null;
      return code;
    }

    /** The numbers of the test's messages Bob got from alice, in arrival order (duplicates included). */
    const received = (): number[] => bob.messages.flatMap((m) => {
      if (m.command !== "PRIVMSG" || m.nick?.toLowerCase() !== "alice") return [];
      const r = /^m2i (\d{3})$/.exec(m.params[1] ?? "");
      return r ? [Number(r[1])] : [];
    });

    async function untilReceived(n: number, timeoutMs: number): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (new Set(received()).size < n) {
        if (Date.now() > deadline) {
          const have = new Set(received());
          const missing = Array.from({ length: MESSAGES }, (_, i) => i + 1).filter((x) => !have.has(x));
          throw new Error(`Bob got ${have.size} distinct messages, waited for ${n}; missing ${JSON.stringify(missing.slice(0, 20))}:\n${log.slice(-3000)}`);
        }
        await sleep(20);
      }
    }

    before(async () => {
      dir = tempDir(`m2i-kill-${o.engine}`);
      ({ irc, tap, pgServer, pgUrl, asPort, metricsPort } = await startKillWorldParts(o.engine));
      hs = await prepareDaemonDir(root, dir, config);
    });

    after(async () => {
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      bob?.destroy();
      await hs?.stop();
      await tap?.stop();
      await irc?.stop();
      await pgServer?.stop();
      writeFileSync(join(dir, "bridge.log"), log);
      console.log(`# m2i-kill ${o.engine} figures: ${JSON.stringify(figures)} (bridge log: ${join(dir, "bridge.log")})`);
    });

    it("a plain DM between Alice and Bob", async () => {
      await startDaemon();
      ({ alice } = await aliceConnected(hs, LONG));
      bob = new IrcClient(irc.host, irc.port);
      await bob.connect("Bob");
      bob.privmsg("alice", "hi alice");
      room = await alice.waitForInvite((_r, state) => state.some((e) => e.type === "m.room.member" && e.sender === GHOST), LONG);
      await alice.join(room);
      await alice.waitForMessage(room, "hi alice", { sender: GHOST, timeoutMs: LONG });
    });

    it(`all ${MESSAGES} messages reach IRC in order across ${o.kills} SIGKILLs, at most one duplicate per kill`, async () => {
      const eventIds = new Map<string, number>();
      const sending = (async () => {
        for (let n = 1; n <= MESSAGES; n++) {
          eventIds.set(await alice.sendText(room, text(n)), n);
          figures.sent++;
        }
      })();
      // Alice is done before the first kill: Synapse strands an appservice transaction that its queue creates while
      // its recoverer finishes (the recoverer finds nothing left, then marks the appservice up; the one stored in
      // between is sent only at the next outage, or never). New events during a recovery are what hits that; the
      // kills still land while Synapse is delivering its backlog and while lines queue behind the flood budget.
      await sending;
      const start = new Set(received()).size;
      // Kill points spread over the rest of the run, at a random phase of the line pacing.
      for (let k = 0; k < o.kills; k++) {
        const target = start + Math.floor(((k + rand()) / (o.kills + 1)) * (MESSAGES - start) * 0.9) + 1;
        await untilReceived(target, LONG);
        await sleep(rand() * LINE_INTERVAL_MS * 2);
        figures.killedAt.push(new Set(received()).size);
        await stopDaemon("SIGKILL");
        figures.kills++;
        await sleep(rand() * 1000);
        await startDaemon();
      }
      await untilReceived(MESSAGES, LONG);
      // A duplicate of the last line would come right behind it: give it the time of a few lines.
      await sleep(LINE_INTERVAL_MS * 10);
      const got = received();
      const firsts: number[] = [];
      const seen = new Set<number>();
      for (const n of got) {
        if (seen.has(n)) continue;
        seen.add(n);
        firsts.push(n);
      }
      figures.delivered = seen.size;
      figures.duplicates = got.length - seen.size;
      figures.lost = MESSAGES - seen.size;
      figures.handedOnAgain = [...log.matchAll(/handed on again[^\n]*count=(\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
      // What the bridge wrote to the IRC server, from the tap: tells a bridge that sent out of order from a line lost on the way.
      const wire = tap.linesSince(0).flatMap((l) => {
        const r = /^PRIVMSG bob :m2i (\d{3})$/i.exec(l);
        return r ? [Number(r[1])] : [];
      });
      figures.wireLines = wire.length;
      // The order the homeserver delivered the events in (the bridge logs each id when it records it). Synapse
      // can deliver a transaction late after an appservice outage (its recoverer finishes while a new transaction
      // is stored unsent, which waits for the next outage): the bridge cannot send a message before it has it, so
      // its order is checked against that, and the homeserver's reorderings are counted on their own.
      const delivered = [...log.matchAll(/msg="Matrix event recorded"[^\n]*?eventId=("?)([^\s"]+)\1/g)].flatMap((m) => eventIds.has(m[2]!) ? [eventIds.get(m[2]!)!] : []);
      figures.hsReordered = delivered.filter((n, i) => delivered.slice(0, i).some((x) => x > n)).length;
      // A kill between the store's commit and the log line leaves an event recorded but not logged.
      const logged = new Set(delivered);
      assert.equal(logged.size, delivered.length, "no event recorded twice");
      const unlogged = MESSAGES - logged.size;
      assert.ok(unlogged <= figures.kills, `${unlogged} events recorded without their log line`);
      assert.deepEqual(firsts.filter((n) => logged.has(n)), delivered, `every message, in the order the homeserver delivered it; Bob got ${JSON.stringify(got)}; the bridge wrote ${JSON.stringify(wire)}`);
      if (figures.hsReordered === 0) assert.deepEqual(firsts, Array.from({ length: MESSAGES }, (_, i) => i + 1), "in order");
      assert.ok(figures.duplicates <= figures.kills, `${figures.duplicates} duplicates for ${figures.kills} kills: ${JSON.stringify(got)}`);
      // A duplicate is always the re-sending of a line just before it (the one the server took before the kill).
      for (const [i, n] of got.entries()) {
        if (got.indexOf(n) !== i) assert.ok(i - got.indexOf(n) <= 3, `message ${n} came again ${i - got.indexOf(n)} lines later`);
      }
      assert.ok(figures.handedOnAgain >= 1, "the kills left events pending that the restarts handed on again");
      assert.ok(!/level=error/.test(log), `the bridge logged an error:\n${log.split("\n").filter((l) => l.includes("level=error")).slice(0, 5).join("\n")}`);
    });

    it("after a planned stop the inbox keeps no message body, and no file of the store holds a message's text", async () => {
      assert.equal(await stopDaemon("SIGTERM"), 0, log.slice(-2000));
      const sealedLeft = o.engine === "sqlite"
        ? await (async () => {
          const { default: Database } = await import("better-sqlite3");
          const db = new Database(join(dir, "bridge.db"), { readonly: true, fileMustExist: true });
          try { return Number((db.prepare("SELECT COUNT(*) AS n FROM inbox_events WHERE sealed IS NOT NULL").get() as { n: number }).n); } finally { db.close(); }
        })()
        : await (async () => {
          const c = new pg.Client({ connectionString: pgUrl });
          await c.connect();
          try { return Number((await c.query("SELECT COUNT(*) AS n FROM inbox_events WHERE sealed IS NOT NULL")).rows[0].n); } finally { await c.end(); }
        })();
      assert.equal(sealedLeft, 0, "every delivered event's body was deleted");
      if (o.engine === "sqlite") {
        for (const f of ["bridge.db", "bridge.db-wal"].map((x) => join(dir, x)).filter(existsSync)) {
          assert.ok(!readFileSync(f).includes(Buffer.from("m2i 1")), `${f} holds a message's text`);
        }
      }
    });
  });
}
