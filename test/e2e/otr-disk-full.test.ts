// Issue 15, the store's file system fills up in the middle of a private conversation with libotr: the real daemon
// (`start`) on a SQLite store in a small tmpfs, which the test then fills to the last byte. With no write possible
// the bridge refuses the homeserver's transactions (Synapse keeps Alice's messages), tells Alice once per outage,
// sends nothing to IRC, logs a stable code and reports not ready. Space again: the bridge sees a write succeed,
// asks Synapse to resend, and every message arrives in order. A second time the disk fills, the bridge is SIGKILLed
// before space comes back: after the restart the kept messages arrive too, libotr reads them without a new AKE,
// and no (key, counter) pair repeats. Needs root (mount); skipped with the reason otherwise.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { OtrDaemonWorld, sleep } from "../harness/otr-daemon.js";
import { isBad } from "../harness/otr-kill.js";

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

  it("with the disk full nothing is sent, Alice is told once, and with space again (also after a kill) every message arrives in order", async () => {
    await w.startDaemon();
    await w.privateConversation();
    // A line from Alice last, so the OTR state is saved and the WAL checkpointed before the disk fills.
    const l0 = w.kate.mark();
    await w.alice.sendText(w.room, "before the disk fills");
    await w.kate.waitForText("before the disk fills", l0);
    await sleep(1000); // the store's checkpoint: the WAL is empty again

    const full = async (tag: string, n: number) => {
      const filled = fillDisk(filler());
      console.log(`# disk-full: filler ${filled} bytes`);
      w.wire.update();
      const dataBefore = w.wire.dataMessages;
      const from = w.alice.mark();
      const lib = w.kate.mark();
      const texts = Array.from({ length: n }, (_, i) => `${tag} ${i}`);
      for (const t of texts) await w.alice.sendText(w.room, t);
      // Synapse's retries of the refused transaction (2 s, 4 s) must not get through either.
      await w.assertStoreOutageHolds({ from, lib, dataBefore, settleMs: 6000, what: "the disk is full" });
      return { texts, lib, from };
    };

    const first = await full("while full", 8);
    assert.match(w.log, /the store cannot write/);
    assert.match(w.log, /database-error/);
    rmSync(filler());
    for (const t of first.texts) await w.kate.waitForText(t, first.lib);
    await sleep(1000);
    assert.deepEqual(w.kateRead(first.lib), first.texts, "with space again every kept message arrived once, in order");
    assert.match(w.log, /the store writes again/);
    assert.equal((await w.readyReport()).status, 200, "/ready is back to 200");

    // Full again, and a crash before the space comes back.
    const second = await full("full again", 4);
    await w.kill();
    rmSync(filler());
    await w.startDaemon();
    await w.puppetBack();
    for (const t of second.texts) await w.kate.waitForText(t, second.lib);
    await sleep(1000);
    assert.deepEqual(w.kateRead(second.lib), second.texts, "after the kill every kept message arrived once, in order");
    for (let i = 0; i < 3; i++) await w.exchange(`space again ${i}`);
    w.wire.update();
    assert.equal(w.wire.reuses, 0, "a (key, counter) pair was used twice");
    assert.equal(w.wire.announceConflicts, 0);
    assert.deepEqual(w.kate.events.slice(w.secureMark).filter(isBad), [], "libotr saw a new AKE, an end or an unreadable message");
    for (const t of [...first.texts, ...second.texts]) assert.ok(!w.tap.sawSent(t), "plaintext on IRC");
  });
});
