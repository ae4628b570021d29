// The kill scenario of issue 15, shared by the SQLite and PostgreSQL e2e files: the real executable (`start`, as a
// child process, exactly as an operator runs it) against Synapse and ngIRCd (behind a TCP tap that keeps every byte
// the bridge sends to IRC), a libotr contact on IRC in a private conversation with Alice. The bridge is SIGKILLed
// at random moments while messages flow both ways (so keys rotate), and restarted on the same store each time.
// After every restart libotr must read the bridge's next message without a new AKE, and the bridge must read
// libotr's; nothing may be unreadable to libotr, nothing may reach IRC in plaintext, and no (key ids, counter) the
// bridge ever used may repeat in the tap (with one key per key id: every next_dh announced for an id is the same).
// Then a planned restart (SIGTERM): libotr sees no end of session. Then the files of the store are searched for
// the DH private keys (and the sealed state) of a session state that has since been rotated away.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import pg from "pg";
import type { SynapseInstance } from "./synapse.js";
import type { NgircdInstance } from "./ngircd.js";
import type { PostgresServer } from "./postgres.js";
import type { TcpTap } from "./tcp-tap.js";
import type { MatrixClient } from "./matrix-client.js";
import { tempDir } from "./proc.js";
import { aliceConnected, killDaemonConfig, prepareDaemonDir, startCliDaemon, startKillWorldParts, stopCliDaemon } from "./cli-daemon.js";
import { LibotrIrcContact, generateContactKey } from "./libotr-irc.js";
import type { HelperEvent } from "./libotr.js";
import { parseIncoming, newReassembler } from "../../src/otr/wireio.js";
import { decodeSnapshot } from "../../src/otr/index.js";
import { bigIntToBytes } from "../../src/otr/crypto/bigint.js";
import { Sealer } from "../../src/store/seal.js";
import { parseMasterKey } from "../../src/store/index.js";

const LONG = 120_000;
const root = fileURLToPath(new URL("../..", import.meta.url));
const NOTICE = "org.matrix_otr_irc.notice";
const ALICE = "@alice:localhost";

/** Every OTR data message the bridge sent to one nick, from the tap: (instances, key ids, counter) and next_dh. */
export class BridgeWireLog {
  readonly seen = new Map<string, number>();
  readonly announced = new Map<string, bigint>();
  reuses = 0;
  announceConflicts = 0;
  dataMessages = 0;
  /** OTR lines to the nick (fragments counted one by one), and what else they parsed as. */
  otrLines = 0;
  readonly otherKinds: Record<string, number> = {};
  private readonly reasm = newReassembler(0);
  private offset = 0;

  constructor(private readonly tap: TcpTap, private readonly nick: string) {}

  /** Reads what the tap got since the last call. */
  update(): void {
    const text = this.tap.sentSince(this.offset);
    const lastNl = text.lastIndexOf("\n");
    if (lastNl < 0) return;
    this.offset += Buffer.byteLength(text.slice(0, lastNl + 1));
    // The nick as the bridge spells it (after a restart it may be the case-folded one).
    const prefix = `privmsg ${this.nick.toLowerCase()} :`;
    for (const raw of text.slice(0, lastNl + 1).split(/\r?\n/)) {
      if (raw.slice(0, prefix.length).toLowerCase() !== prefix) continue;
      this.otrLines++;
      let m = parseIncoming(raw.slice(prefix.length));
      if (m.kind === "fragment") {
        const r = this.reasm.add(m.fragment, Date.now());
        if (r.complete === null) continue;
        m = parseIncoming(r.complete);
      }
      if (m.kind !== "data") {
        this.otherKinds[m.kind] = (this.otherKinds[m.kind] ?? 0) + 1;
        continue;
      }
      this.dataMessages++;
      const f = m.fields;
      const inst = `${m.senderInstance}/${m.receiverInstance}`;
      const k = `${inst}/${f.senderKeyId}/${f.recipientKeyId}/${Buffer.from(f.ctr).toString("hex")}`;
      if (this.seen.has(k)) this.reuses++;
      this.seen.set(k, (this.seen.get(k) ?? 0) + 1);
      const id = `${inst}/${f.senderKeyId + 1}`;
      const prev = this.announced.get(id);
      if (prev !== undefined && prev !== f.nextDh) this.announceConflicts++;
      this.announced.set(id, f.nextDh);
    }
  }
}

export interface KillScenarioOptions {
  engine: "sqlite" | "postgres";
  kills: number;
}

/** libotr events that must never happen once the conversation is private. */
export function isBad(e: HelperEvent): boolean {
  if (e.ev === "gone_secure" || e.ev === "still_secure" || e.ev === "gone_insecure") return true;
  if (e.ev === "received" && !e.otr) return true;
  if (e.ev === "msg_event") return /UNREADABLE|NOT_IN_PRIVATE|MALFORMED|UNENCRYPTED|GENERAL_ERR|ERROR/.test(e.event);
  return false;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function killScenario(o: KillScenarioOptions): void {
  describe(`SIGKILL at random points of a libotr conversation, ${o.engine} store (${o.kills} kills)`, { timeout: 3_600_000 }, () => {
    let hs: SynapseInstance;
    let irc: NgircdInstance;
    let tap: TcpTap;
    let pgServer: PostgresServer | undefined;
    let pgUrl = "";
    let child: ChildProcess | null = null;
    let kate: LibotrIrcContact;
    let alice: MatrixClient;
    let room = "";
    let dir = "";
    let metricsPort = 0;
    let asPort = 0;
    let log = "";
    let wire: BridgeWireLog;
    let secureMark = 0;
    const rand = (() => {
      const seed = process.env.OTR_KILL_SEED ?? String(Date.now());
      let i = 0;
      console.log(`# otr-kill seed ${seed} (OTR_KILL_SEED=${seed} replays it)`);
      return () => createHash("sha256").update(`${seed}/${i++}`).digest().readUInt32BE(0) / 2 ** 32;
    })();
    const figures = { kills: 0, restarts: 0, aliceSent: 0, aliceRead: 0, aliceDuplicates: 0, kateSent: 0, kateShown: 0, kateRefusedByServer: 0, checksOk: 0 };
    const aliceTexts: string[] = [];
    const kateTexts: string[] = [];

    const config = (hsUrl: string) => killDaemonConfig({
      hsUrl, parts: { irc, tap, pgServer, pgUrl, asPort, metricsPort }, engine: o.engine, dir, user: ALICE,
      networkExtra: "", otr: "{ default_policy: opportunistic, persist_sessions: true }", logLevel: "info",
    });

    async function startDaemon(): Promise<void> {
      await startCliDaemon({ root, dir, metricsPort, onSpawn: (c) => (child = c), onStderr: (t) => (log += t), logTail: () => log });
    }

    async function stopDaemon(signal: NodeJS.Signals): Promise<number | null> {
      const code = await stopCliDaemon(child!, signal);
      child = null;
      return code;
    }

    /** Until the puppet is on IRC again (ISON from the contact's connection). */
    async function puppetBack(): Promise<void> {
      const deadline = Date.now() + LONG;
      for (;;) {
        const from = kate.irc.mark();
        kate.irc.send("ISON alice");
        const r = await kate.irc.waitFor((m) => m.command === "303", 30_000, from);
        if (/(^|\s)alice(\s|$)/i.test(r.params.at(-1) ?? "")) return;
        if (Date.now() > deadline) throw new Error("the puppet did not come back");
        await sleep(200);
      }
    }

    before(async () => {
      dir = tempDir(`otr-kill-${o.engine}`);
      ({ irc, tap, pgServer, pgUrl, asPort, metricsPort } = await startKillWorldParts(o.engine));
      hs = await prepareDaemonDir(root, dir, config);
      wire = new BridgeWireLog(tap, "Kate");
    });

    after(async () => {
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await kate?.close().catch(() => undefined);
      await hs?.stop();
      await tap?.stop();
      await irc?.stop();
      await pgServer?.stop();
      console.log(`# otr-kill ${o.engine} figures: ${JSON.stringify({ ...figures, dataMessages: wire?.dataMessages, ircLinesToPeer: wire?.otrLines, otherKinds: wire?.otherKinds, counterReuses: wire?.reuses, keyIdConflicts: wire?.announceConflicts })}`);
    });

    it("a private conversation with a libotr contact", async () => {
      await startDaemon();
      ({ alice } = await aliceConnected(hs, LONG));
      const key = generateContactKey("Kate");
      kate = await LibotrIrcContact.connect({ host: irc.host, port: irc.port, nick: "Kate", remote: "alice", keyFile: key.keyFile });
      const ghost = "@irc_local_kate:localhost";
      kate.irc.privmsg("alice", "hello, let's go private");
      room = await alice.waitForInvite((_r, state) => state.some((e) => e.type === "m.room.member" && e.sender === ghost), LONG);
      await alice.join(room);
      await alice.waitForMessage(room, "hello, let's go private", { sender: ghost, timeoutMs: LONG });
      const lib = kate.mark();
      const m = alice.mark();
      kate.startOtr();
      await kate.waitForSecure(lib);
      await alice.waitForEvent(room, (e) => e.content[NOTICE] === "gone-secure", LONG, m);
      secureMark = kate.mark();
      // One exchange each way, so the saved state has rotated keys in it.
      const l2 = kate.mark();
      await alice.sendText(room, "first private line");
      assert.equal((await kate.waitForText("first private line", l2)).otr, true);
      const m2 = alice.mark();
      await kate.send("first private reply");
      await alice.waitForMessage(room, "first private reply", { sender: ghost, timeoutMs: LONG, from: m2 });
    });

    it(`survives ${o.kills} SIGKILLs at random points: libotr reads every new message without a new AKE`, async () => {
      const ghost = "@irc_local_kate:localhost";
      const ircFrom = kate.irc.lines.length;
      for (let k = 0; k < o.kills; k++) {
        // A burst both ways, not awaited: the kill lands somewhere inside it.
        const ops = 2 + Math.floor(rand() * 6);
        const burst = (async () => {
          for (let i = 0; i < ops; i++) {
            if (rand() < 0.5) {
              const t = `a${k}.${i} from alice`;
              aliceTexts.push(t);
              figures.aliceSent++;
              await alice.sendText(room, t).catch(() => undefined);
            } else {
              const t = `k${k}.${i} from kate`;
              kateTexts.push(t);
              figures.kateSent++;
              await kate.send(t).catch(() => undefined);
            }
            await sleep(rand() * 150);
          }
        })();
        await sleep(rand() * 1200);
        await stopDaemon("SIGKILL");
        figures.kills++;
        await burst;
        await startDaemon();
        await puppetBack();
        figures.restarts++;
        // After the restart, one message each way must get through at once, encrypted, with the same session.
        const lk = kate.mark();
        const check = `check ${k} from alice`;
        await alice.sendText(room, check);
        const got = await kate.waitForText(check, lk);
        assert.equal(got.otr, true, "read as an OTR message");
        const fromM = alice.mark();
        await kate.send(`check ${k} from kate`);
        const shown = await alice.waitForMessage(room, `check ${k} from kate`, { sender: ghost, timeoutMs: LONG, from: fromM });
        assert.deepEqual(shown.content["org.matrix_otr_irc.otr"], { encrypted: true, verified: false });
        figures.checksOk++;
        wire.update();
        assert.equal(wire.reuses, 0, `after kill ${k + 1}: a (key, counter) pair was used twice`);
        assert.equal(wire.announceConflicts, 0, `after kill ${k + 1}: a key id was announced with two different keys`);
        const bad = kate.events.slice(secureMark).filter(isBad);
        assert.deepEqual(bad, [], `after kill ${k + 1}: libotr saw a new AKE, an end, plaintext or an unreadable message`);
      }
      // What the bursts delivered (in flight at a kill, a message may be lost: that is issues 15's parts 2 and 3).
      const read = kate.events.filter((e): e is Extract<HelperEvent, { ev: "received" }> => e.ev === "received").map((e) => Buffer.from(e.text, "hex").toString("utf8"));
      for (const t of aliceTexts) {
        const n = read.filter((x) => x === t).length;
        if (n > 0) figures.aliceRead++;
        if (n > 1) figures.aliceDuplicates += n - 1;
      }
      const shownTexts = alice.events.filter((s) => s.roomId === room && s.event.sender === ghost).map((s) => String(s.event.content.body));
      figures.kateShown = kateTexts.filter((t) => shownTexts.includes(t)).length;
      // Kate's lines sent while the bridge was down: the server answers ERR_NOSUCHNICK, IRC keeps nothing for an
      // absent nick, so no bridge can show them (each of Kate's burst texts is one line).
      figures.kateRefusedByServer = kate.irc.lines.slice(ircFrom).filter((l) => / 401 /.test(l)).length;
      for (const t of [...aliceTexts, "first private line"]) assert.ok(!tap.sawSent(t), `"${t}" reached IRC in plaintext`);
      assert.equal((await kate.status()).state, "encrypted");
      const notices = alice.events.filter((s) => s.roomId === room && ["unreadable", "resume-failed", "not-saved", "gone-secure"].includes(String(s.event.content[NOTICE])));
      assert.equal(notices.length, 1, `only the first gone-secure notice: ${notices.map((s) => s.event.content[NOTICE]).join(",")}`);
    });

    it("SIGKILL during an SMP: the bridge says it was interrupted; a new SMP after the restart succeeds, still without a new AKE", async () => {
      const ghost = "@irc_local_kate:localhost";
      const waitNotice = (code: string, from: number) => alice.waitForEvent(room, (e) => e.content[NOTICE] === code && e.sender === ghost, LONG, from);
      let from = alice.mark();
      await kate.smpStart("kill-sesame-1", "where?");
      await waitNotice("smp-question", from);
      await stopDaemon("SIGKILL");
      figures.kills++;
      await startDaemon();
      await puppetBack();
      figures.restarts++;
      // Kate gives up on the exchange the bridge lost and asks again.
      from = alice.mark();
      await kate.smpAbort();
      const said = await waitNotice("smp-abort", from);
      assert.match(String(said.content.body), /interrupted by a bridge restart/, "the resumed session says the SMP was dropped");
      from = alice.mark();
      const lib = kate.mark();
      await kate.smpStart("kill-sesame-2", "where again?");
      await waitNotice("smp-question", from);
      const cmd = await alice.sendText(room, "!otr smp kill-sesame-2");
      assert.ok(cmd);
      await waitNotice("smp-success", from);
      assert.equal((await kate.waitForSmp(["SUCCESS", "FAILURE", "ABORT", "CHEATED", "ERROR"], lib)).event, "SUCCESS");
      assert.deepEqual(kate.events.slice(secureMark).filter(isBad), []);
      wire.update();
      assert.equal(wire.reuses, 0);
    });

    it("a planned restart (SIGTERM): libotr sees no end of the private conversation, and it goes on", async () => {
      const lib = kate.mark();
      const tapMark = tap.mark();
      assert.equal(await stopDaemon("SIGTERM"), 0, log.slice(-2000));
      await sleep(500);
      assert.deepEqual(kate.events.slice(lib).filter(isBad), [], "no TLV 1 / session end");
      assert.ok(!kate.events.slice(lib).some((e) => e.ev === "ignored"), "no TLV 1 (libotr reports it as an ignored message)");
      assert.ok(!tap.linesSince(tapMark).some((l) => /^PRIVMSG kate :\?OTR/i.test(l)), "nothing OTR was sent at shutdown");
      assert.equal((await kate.status()).state, "encrypted");
      await startDaemon();
      await puppetBack();
      const lk = kate.mark();
      await alice.sendText(room, "after the planned restart");
      assert.equal((await kate.waitForText("after the planned restart", lk)).otr, true);
      const m = alice.mark();
      await kate.send("reply after the planned restart");
      await alice.waitForMessage(room, "reply after the planned restart", { sender: "@irc_local_kate:localhost", timeoutMs: LONG, from: m });
      assert.deepEqual(kate.events.slice(secureMark).filter(isBad), []);
    });

    it("the DH private keys of a rotated-away session state are not in the store's files", async () => {
      const masterKey = parseMasterKey(readFileSync(join(dir, "master.key"), "utf8"), "test");
      const sealer = new Sealer(masterKey);
      const binding = [ALICE, "local", "kate"];
      const readSealed = async (): Promise<Uint8Array> => {
        if (o.engine === "sqlite") {
          const { default: Database } = await import("better-sqlite3");
          const db = new Database(join(dir, "bridge.db"), { readonly: true, fileMustExist: true });
          try {
            return new Uint8Array((db.prepare("SELECT sealed FROM otr_sessions WHERE user_id = ? AND network_id = ? AND nick = ?").get(...binding) as { sealed: Buffer }).sealed);
          } finally { db.close(); }
        }
        const c = new pg.Client({ connectionString: pgUrl });
        await c.connect();
        try {
          return new Uint8Array((await c.query("SELECT sealed FROM otr_sessions WHERE user_id = $1 AND network_id = $2 AND nick = $3", binding)).rows[0].sealed);
        } finally { await c.end(); }
      };
      const keysOf = (sealed: Uint8Array) => {
        const d = decodeSnapshot(sealer.open("otr-session", binding, sealed));
        assert.ok(d.ok);
        const k = d.snapshot.sessions[0]!.keys!;
        return { ourKeyId: k.ourKeyId, xs: [k.ourPrev.x, ...(k.ourCur ? [k.ourCur.x] : [])] };
      };
      const oldSealed = await readSealed();
      const old = keysOf(oldSealed);
      // Rotate both of those keys away: each exchange retires one of ours.
      for (let i = 0; i < 4; i++) {
        const lk = kate.mark();
        await alice.sendText(room, `rotate ${i}`);
        await kate.waitForText(`rotate ${i}`, lk);
        const m = alice.mark();
        await kate.send(`rotated ${i}`);
        await alice.waitForMessage(room, `rotated ${i}`, { sender: "@irc_local_kate:localhost", timeoutMs: LONG, from: m });
      }
      await sleep(1000); // past the store's erase delay
      const now = keysOf(await readSealed());
      assert.ok(now.ourKeyId >= old.ourKeyId + 2, `our keys rotated: key id ${old.ourKeyId} -> ${now.ourKeyId}`);
      const needles: [string, Buffer][] = [];
      for (const x of old.xs) {
        const b = Buffer.from(bigIntToBytes(x));
        needles.push(["x raw", b], ["x hex", Buffer.from(b.toString("hex"))], ["x HEX", Buffer.from(b.toString("hex").toUpperCase())], ["x decimal", Buffer.from(x.toString(10))]);
        for (let i = 0; i + 12 <= b.length; i += 4) needles.push([`x bytes [${i}..)`, b.subarray(i, i + 12)]);
      }
      const sealedWindows: Buffer[] = [];
      for (let i = 0; i + 16 <= oldSealed.length; i += 8) sealedWindows.push(Buffer.from(oldSealed.subarray(i, i + 16)));
      const files = o.engine === "sqlite"
        ? ["bridge.db", "bridge.db-wal", "bridge.db-shm"].map((f) => join(dir, f)).filter(existsSync)
        : listFiles(pgServer!.dataDir);
      let rawFound = 0, sealedFound = 0;
      for (const f of files) {
        const b = readFileSync(f);
        for (const [, n] of needles) if (b.includes(n)) rawFound++;
        for (const w of sealedWindows) if (b.includes(w)) sealedFound++;
      }
      wire.update();
      assert.equal(wire.reuses, 0, "a (key, counter) pair was used twice");
      assert.equal(wire.announceConflicts, 0);
      console.log(`# otr-kill ${o.engine} old-key search: ${files.length} files, ${needles.length} key needles found ${rawFound} times, ${sealedWindows.length} windows of the old sealed state found ${sealedFound} times`);
      assert.equal(rawFound, 0, "a rotated-away DH private key is in the store's files");
      // SQLite erases the replaced sealed state too; PostgreSQL cannot promise it (docs/store.md), so it is only counted.
      if (o.engine === "sqlite") assert.equal(sealedFound, 0, "the rotated-away sealed state is still in the SQLite files");
    });
  });
}

function listFiles(d: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else if (e.isFile() && statSync(p).size > 0) out.push(p);
  }
  return out;
}
