// Issue 15, the store's file system fills up in the middle of a private conversation with libotr: the real daemon
// (`start`) on a SQLite store in a small tmpfs, which the test then fills to the last byte. Write before send means
// that once the counter reservation saved before the disk filled is used up, the bridge sends nothing more to the
// contact (the tap shows it), tells Alice each time (a `not-saved` notice quoting her text, a logged error with a
// stable code), and does not fall over. A SIGKILL while the disk is full, then space again: the restarted bridge
// resumes above every counter it used, libotr reads the next messages without a new AKE, and no (key, counter)
// pair repeats. Needs root (mount); skipped with the reason otherwise.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { OtrDaemonWorld, sleep } from "../harness/otr-daemon.js";
import { isBad } from "../harness/otr-kill.js";
import { SEND_COUNTER_RESERVE } from "../../src/otr/index.js";

const canMount = process.getuid?.() === 0;

/** Writes a file until the file system has no byte left; returns the bytes written. */
function fillDisk(path: string): number {
  const fd = openSync(path, "w");
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  let total = 0;
  try {
    for (let n = chunk.length; n >= 1; n = Math.floor(n / 2)) {
      try { for (;;) total += writeSync(fd, chunk.subarray(0, n)); } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
      }
    }
  } finally {
    closeSync(fd);
  }
  return total;
}

describe("the store's disk fills up during a libotr conversation", { timeout: 1_800_000, skip: canMount ? false : "needs root to mount a tmpfs" }, () => {
  let mounted = false;
  const w = new OtrDaemonWorld(() => `{ engine: sqlite, sqlite_path: ${mnt()}/bridge.db, master_key_file: ${w.dir}/master.key }`);
  const mnt = () => join(w.dir, "store");
  const filler = () => join(mnt(), "filler");

  before(async () => {
    mkdirSync(mnt());
    const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", mnt()], { encoding: "utf8" });
    assert.equal(m.status, 0, m.stderr);
    mounted = true;
    await w.start();
  });

  after(async () => {
    await w.stop();
    if (mounted) spawnSync("umount", ["-l", mnt()]);
    rmSync(w.dir, { recursive: true, force: true });
  });

  it("with the disk full nothing is sent past the saved reservation, Alice is told, and after a kill and free space the conversation goes on", async () => {
    await w.startDaemon();
    await w.privateConversation();
    // A line from Alice last, so a counter reservation on the current keys was saved and is partly unused.
    const l0 = w.kate.mark();
    await w.alice.sendText(w.room, "before the disk fills");
    await w.kate.waitForText("before the disk fills", l0);
    await sleep(1000); // the store's checkpoint: the WAL is empty again
    const filled = fillDisk(filler());
    console.log(`# disk-full: filler ${filled} bytes`);
    w.wire.update();
    const dataBefore = w.wire.dataMessages;
    const n = Number(SEND_COUNTER_RESERVE) + 6;
    const from = w.alice.mark();
    const lib = w.kate.mark();
    const texts = Array.from({ length: n }, (_, i) => `while full ${i}`);
    for (const t of texts) await w.alice.sendText(w.room, t);
    // Every message either reaches Kate or comes back in a not-saved notice; wait until all are accounted for.
    const deadline = Date.now() + 120_000;
    let refused: string[] = [];
    let read: string[] = [];
    for (;;) {
      const notices = w.notSaved(from);
      refused = texts.filter((t) => notices.some((b) => b.split("\n").includes(`> ${t}`)));
      read = texts.filter((t) => w.kateRead(lib).includes(t));
      if (refused.length + read.length >= n || Date.now() > deadline) break;
      await w.alice.sync({ timeoutMs: 1000 }).catch(() => undefined);
      await sleep(300);
    }
    await sleep(1000);
    w.wire.update();
    console.log(`# disk-full: ${read.length} read by libotr (inside the saved reservation), ${refused.length} refused with a notice, ${w.wire.dataMessages - dataBefore} data messages sent`);
    assert.equal(read.length + refused.length, n, "every message was either sent or given back");
    assert.ok(refused.length >= 6, "once the reservation is used up, nothing more is sent");
    assert.ok(read.length > 0, "what the saved reservation covers still goes out");
    assert.ok(read.length < Number(SEND_COUNTER_RESERVE), "no more than the saved reservation went out");
    // Every data message on IRC was read by libotr: a text, or an empty one (a heartbeat) it reports as ignored.
    const heard = w.kate.events.slice(lib).filter((e) => e.ev === "received" || e.ev === "ignored").length;
    const got = w.kateRead(lib);
    console.log(`# disk-full: libotr read ${got.length} texts, ${new Set(got).size} distinct; not Alice's: ${JSON.stringify(got.filter((t) => !texts.includes(t)))}`);
    assert.equal(w.wire.dataMessages - dataBefore, heard, "everything that went to IRC was read by libotr");
    assert.match(w.log, /could not save an OTR session/);
    assert.match(w.log, /database-error/);
    assert.equal(w.child!.exitCode, null, "the bridge keeps running");

    // A crash while the disk is still full, then the space comes back.
    await w.kill();
    rmSync(filler());
    await w.startDaemon();
    await w.puppetBack();
    for (let i = 0; i < 3; i++) await w.exchange(`space again ${i}`);
    w.wire.update();
    assert.equal(w.wire.reuses, 0, "a (key, counter) pair was used twice");
    assert.equal(w.wire.announceConflicts, 0);
    assert.deepEqual(w.kate.events.slice(w.secureMark).filter(isBad), [], "libotr saw a new AKE, an end or an unreadable message");
    for (const t of texts) assert.ok(!w.tap.sawSent(t), "plaintext on IRC");
  });
});
