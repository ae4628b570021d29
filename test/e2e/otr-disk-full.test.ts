// Issue 15, the store's file system fills up in the middle of a private conversation with libotr: the real daemon
// (`start`) on a SQLite store in a small tmpfs, which the test then fills to the last byte. Write before send means
// that once the counter reservation saved before the disk filled is used up, the bridge sends nothing more to the
// contact (the tap shows it), tells Alice each time (a `not-saved` notice quoting her text, a logged error with a
// stable code), and does not fall over. A SIGKILL while the disk is full, then space again: the restarted bridge
// resumes above every counter it used, libotr reads the next messages without a new AKE, and no (key, counter)
// pair repeats. Needs root (mount); skipped with the reason otherwise.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, writeSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startSynapse, type SynapseInstance } from "../harness/synapse.js";
import { startNgircd, type NgircdInstance } from "../harness/ngircd.js";
import { startTcpTap, type TcpTap } from "../harness/tcp-tap.js";
import { MatrixClient } from "../harness/matrix-client.js";
import { freePort } from "../harness/ports.js";
import { tempDir } from "../harness/proc.js";
import { LibotrIrcContact, generateContactKey } from "../harness/libotr-irc.js";
import { BridgeWireLog, isBad } from "../harness/otr-kill.js";
import { SEND_COUNTER_RESERVE } from "../../src/otr/index.js";

const LONG = 120_000;
const root = fileURLToPath(new URL("../..", import.meta.url));
const NOTICE = "org.matrix_otr_irc.notice";
const GHOST = "@irc_local_kate:localhost";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const canMount = process.getuid?.() === 0;

describe("the store's disk fills up during a libotr conversation", { timeout: 1_800_000, skip: canMount ? false : "needs root to mount a tmpfs" }, () => {
  let hs: SynapseInstance;
  let irc: NgircdInstance;
  let tap: TcpTap;
  let child: ChildProcess | null = null;
  let kate: LibotrIrcContact;
  let alice: MatrixClient;
  let room = "";
  let dir = "";
  let mnt = "";
  let mounted = false;
  let asPort = 0;
  let metricsPort = 0;
  let log = "";
  let wire: BridgeWireLog;
  let secureMark = 0;
  const filler = () => join(mnt, "filler");

  const config = (hsUrl: string) => `homeserver: { url: "${hsUrl}", domain: localhost }
appservice: { url: "http://127.0.0.1:${asPort}", port: ${asPort}, bot_localpart: ircotr }
networks: [{ id: local, name: Local, host: ${tap.host}, port: ${tap.port}, tls: false }]
permissions: { "@alice:localhost": user }
otr: { default_policy: opportunistic }
store: { engine: sqlite, sqlite_path: ${mnt}/bridge.db, master_key_file: ${dir}/master.key }
metrics: { port: ${metricsPort} }
encryption: { allow: false }
logging: { level: info, format: logfmt }
`;

  async function startDaemon(): Promise<void> {
    const c = spawn(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), "start", "-c", join(dir, "config.yaml"), "-f", join(dir, "registration.yaml")], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    child = c;
    c.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    for (let i = 0; i < 480; i++) {
      if (await fetch(`http://127.0.0.1:${metricsPort}/ready`).then((r) => r.ok, () => false)) return;
      if (c.exitCode !== null) throw new Error(`the bridge exited ${c.exitCode}:\n${log.slice(-3000)}`);
      await sleep(250);
    }
    throw new Error(`the bridge never became ready:\n${log.slice(-3000)}`);
  }

  async function puppetBack(): Promise<void> {
    for (let i = 0; i < 300; i++) {
      const from = kate.irc.mark();
      kate.irc.send("ISON alice");
      const r = await kate.irc.waitFor((m) => m.command === "303", 30_000, from);
      if (/(^|\s)alice(\s|$)/i.test(r.params.at(-1) ?? "")) return;
      await sleep(200);
    }
    throw new Error("the puppet did not come back");
  }

  /** Writes a file until the tmpfs has no byte left. */
  function fillDisk(): number {
    const fd = openSync(filler(), "w");
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    let total = 0;
    try {
      for (;;) {
        try {
          total += writeSync(fd, chunk);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
          break;
        }
      }
      for (let n = 4096; n >= 1; n = Math.floor(n / 2)) {
        try { for (;;) total += writeSync(fd, chunk.subarray(0, n)); } catch { /* next smaller size */ }
      }
    } finally {
      closeSync(fd);
    }
    return total;
  }

  before(async () => {
    dir = tempDir("otr-disk-full");
    mnt = join(dir, "store");
    mkdirSync(mnt);
    const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", mnt], { encoding: "utf8" });
    assert.equal(m.status, 0, m.stderr);
    mounted = true;
    irc = await startNgircd();
    tap = await startTcpTap(irc.host, irc.port);
    asPort = await freePort();
    metricsPort = await freePort();
    writeFileSync(join(dir, "config.yaml"), config("http://127.0.0.1:1"));
    const g = spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), "generate-registration", "-c", join(dir, "config.yaml"), "-f", join(dir, "registration.yaml")], { cwd: root, encoding: "utf8", timeout: 120_000 });
    assert.equal(g.status, 0, g.stderr);
    hs = await startSynapse({ registrationPath: join(dir, "registration.yaml") });
    writeFileSync(join(dir, "config.yaml"), config(hs.url));
    wire = new BridgeWireLog(tap, "Kate");
  });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await kate?.close().catch(() => undefined);
    await hs?.stop();
    await tap?.stop();
    await irc?.stop();
    if (mounted) spawnSync("umount", ["-l", mnt]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("with the disk full nothing is sent past the saved reservation, Alice is told, and after a kill and free space the conversation goes on", async () => {
    await startDaemon();
    const a = await hs.registerUser("alice", "alice-pw");
    alice = new MatrixClient(hs.url, a.userId, a.accessToken);
    const bot = "@ircotr:localhost";
    const mgmt = await alice.createDm(bot);
    await alice.waitForMessage(mgmt, /management room/, { sender: bot, timeoutMs: LONG });
    let from = alice.mark();
    await alice.sendText(mgmt, "connect local");
    await alice.waitForMessage(mgmt, "Connected to local as alice.", { sender: bot, timeoutMs: LONG, from });
    const key = generateContactKey("Kate");
    kate = await LibotrIrcContact.connect({ host: irc.host, port: irc.port, nick: "Kate", remote: "alice", keyFile: key.keyFile });
    kate.irc.privmsg("alice", "hello");
    room = await alice.waitForInvite((_r, state) => state.some((e) => e.type === "m.room.member" && e.sender === GHOST), LONG);
    await alice.join(room);
    await alice.waitForMessage(room, "hello", { sender: GHOST, timeoutMs: LONG });
    let lib = kate.mark();
    from = alice.mark();
    kate.startOtr();
    await kate.waitForSecure(lib);
    await alice.waitForEvent(room, (e) => e.content[NOTICE] === "gone-secure", LONG, from);
    secureMark = kate.mark();
    lib = kate.mark();
    await alice.sendText(room, "before the disk fills");
    await kate.waitForText("before the disk fills", lib);
    await sleep(1000); // the store's checkpoint: the WAL is empty again

    const filled = fillDisk();
    console.log(`# disk-full: filler ${filled} bytes`);
    wire.update();
    const dataBefore = wire.dataMessages;
    const n = Number(SEND_COUNTER_RESERVE) + 6;
    from = alice.mark();
    lib = kate.mark();
    const texts = Array.from({ length: n }, (_, i) => `while full ${i}`);
    for (const t of texts) await alice.sendText(room, t);
    // Every message either reaches Kate or comes back in a not-saved notice; wait until all are accounted for.
    const deadline = Date.now() + LONG;
    let refused: string[] = [];
    let read: string[] = [];
    for (;;) {
      refused = texts.filter((t) => alice.events.slice(from).some((s) => s.roomId === room && s.event.content[NOTICE] === "not-saved" && String(s.event.content.body).includes(`> ${t}`)));
      read = texts.filter((t) => kate.events.slice(lib).some((e) => e.ev === "received" && Buffer.from(e.text, "hex").toString("utf8") === t));
      if (refused.length + read.length >= n || Date.now() > deadline) break;
      await alice.sync({ timeoutMs: 1000 }).catch(() => undefined);
      await sleep(300);
    }
    wire.update();
    console.log(`# disk-full: ${read.length} read by libotr (inside the saved reservation), ${refused.length} refused with a notice, ${wire.dataMessages - dataBefore} data messages sent`);
    assert.equal(read.length + refused.length, n, "every message was either sent or given back");
    assert.ok(refused.length >= 6, "once the reservation is used up, nothing more is sent");
    assert.ok(read.length < Number(SEND_COUNTER_RESERVE), "no more than the saved reservation went out");
    assert.equal(wire.dataMessages - dataBefore, read.length, "what libotr read is all that went to IRC");
    assert.match(log, /could not save an OTR session/);
    assert.match(log, /database-error/);
    assert.equal(child!.exitCode, null, "the bridge keeps running");

    // A crash while the disk is still full, then the space comes back.
    child!.kill("SIGKILL");
    await new Promise((r) => child!.once("exit", r));
    rmSync(filler());
    await startDaemon();
    await puppetBack();
    for (let i = 0; i < 3; i++) {
      lib = kate.mark();
      await alice.sendText(room, `space again ${i}`);
      assert.equal((await kate.waitForText(`space again ${i}`, lib)).otr, true);
      from = alice.mark();
      await kate.send(`reply ${i}`);
      await alice.waitForMessage(room, `reply ${i}`, { sender: GHOST, timeoutMs: LONG, from });
    }
    wire.update();
    assert.equal(wire.reuses, 0, "a (key, counter) pair was used twice");
    assert.equal(wire.announceConflicts, 0);
    assert.deepEqual(kate.events.slice(secureMark).filter(isBad), [], "libotr saw a new AKE, an end or an unreadable message");
    for (const t of texts) assert.ok(!tap.sawSent(t), "plaintext on IRC");
  });
});
