// Issue 15, PostgreSQL goes away mid-conversation (stopped as a crash would, then started again) while Alice and a
// libotr contact keep talking through the real daemon. While the database is down the bridge keeps running and
// sends nothing whose state it could not save (nothing past the saved counter reservation; nothing reaches IRC
// that libotr cannot read); once PostgreSQL is back the same
// conversation goes on without a new AKE, and no (key, counter) pair ever repeats. Messages the bridge could not
// even route while the database was down (room lookups fail too) are lost, not retried: that is counted and
// printed, it is the part of issue 15 not done yet.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { OtrDaemonWorld, sleep } from "../harness/otr-daemon.js";
import { isBad } from "../harness/otr-kill.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";
import { SEND_COUNTER_RESERVE } from "../../src/otr/index.js";

describe("PostgreSQL restarts during a libotr conversation", { timeout: 1_800_000 }, () => {
  let server: PostgresServer;
  let url = "";
  const w = new OtrDaemonWorld(() => `{ engine: postgres, postgres_url: "${url}", master_key_file: ${w.dir}/master.key }`);

  before(async () => {
    server = await startPostgres();
    url = await server.newDatabase();
    await w.start();
  });
  after(async () => {
    await w.stop();
    await server?.stop();
  });

  it("down: nothing unsaved reaches IRC and the bridge keeps running; up again: the same conversation goes on", async () => {
    await w.startDaemon();
    await w.privateConversation();
    server.down();
    w.wire.update();
    const dataBefore = w.wire.dataMessages;
    const n = Number(SEND_COUNTER_RESERVE) + 6;
    const texts = Array.from({ length: n }, (_, i) => `while the database is down ${i}`);
    const from = w.alice.mark();
    const lib = w.kate.mark();
    for (const t of texts) await w.alice.sendText(w.room, t);
    // Until nothing changes for 4 s: every message handled (sent, given back, or failed before it could be routed).
    let read: string[] = [];
    let refused: string[] = [];
    let last = "";
    for (let stable = 0, i = 0; stable < 4 && i < 120; i++) {
      await w.alice.sync({ timeoutMs: 1000 }).catch(() => undefined);
      await sleep(1000);
      w.wire.update();
      read = texts.filter((t) => w.kateRead(lib).includes(t));
      const notices = w.notSaved(from);
      refused = texts.filter((t) => notices.some((b) => b.split("\n").includes(`> ${t}`)));
      const now = `${read.length}/${refused.length}/${w.wire.dataMessages}`;
      stable = now === last ? stable + 1 : 0;
      last = now;
    }
    const lost = n - read.length - refused.length;
    console.log(`# pg-restart: ${n} sent by Alice while PostgreSQL was down: ${read.length} read by libotr (inside the saved reservation), ${refused.length} given back in a not-saved notice, ${lost} lost (not retried: issue 15 part 3), ${w.wire.dataMessages - dataBefore} data messages on IRC`);
    assert.ok(read.length < Number(SEND_COUNTER_RESERVE), "no more than the saved reservation went out");
    assert.equal(w.wire.dataMessages - dataBefore, read.length, "what went to IRC is what libotr read");
    assert.equal(w.child!.exitCode, null, "the bridge keeps running");
    const down = await w.readyReport();
    assert.equal(down.status, 503, "/ready says the bridge is not ready while its database is down");
    assert.match(down.body, /store/, down.body);

    server.up();
    // The pool reconnects on the next statement: the conversation continues, both ways, with the same keys.
    let ok = false;
    for (let i = 0; i < 20 && !ok; i++) {
      const f = w.alice.mark();
      const l = w.kate.mark();
      await w.alice.sendText(w.room, `probe ${i}`);
      const got = await Promise.race([
        w.kate.waitForEvent((e) => e.ev === "received" && Buffer.from(e.text, "hex").toString("utf8") === `probe ${i}`, "the probe", l, 10_000).then(() => true, () => false),
        w.alice.waitForEvent(w.room, (e) => e.content["org.matrix_otr_irc.notice"] === "not-saved", 10_000, f).then(() => false, () => false),
      ]);
      ok = got;
      if (!ok) await sleep(1000);
    }
    assert.ok(ok, "after PostgreSQL came back a message got through");
    assert.equal((await w.readyReport()).status, 200, "/ready is back to 200");
    for (let i = 0; i < 3; i++) await w.exchange(`after the restart ${i}`);
    w.wire.update();
    assert.equal(w.wire.reuses, 0, "a (key, counter) pair was used twice");
    assert.equal(w.wire.announceConflicts, 0);
    assert.deepEqual(w.kate.events.slice(w.secureMark).filter(isBad), [], "libotr saw a new AKE, an end, plaintext or an unreadable message");
    for (const t of texts) assert.ok(!w.tap.sawSent(t), "plaintext on IRC");
  });
});
