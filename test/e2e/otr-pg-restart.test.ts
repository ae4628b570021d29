// Issue 15, PostgreSQL goes away mid-conversation (stopped as a crash would, then started again) while Alice and a
// libotr contact keep talking through the real daemon. While the database is down the bridge keeps running, refuses
// the homeserver's transactions (so Synapse keeps Alice's messages), tells Alice once in the DM room, sends nothing
// to IRC and reports not ready; once PostgreSQL is back it asks Synapse to resend, and every message Alice wrote
// meanwhile reaches libotr, in order, once, in the same OTR conversation (no new AKE, no (key, counter) pair twice).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { OtrDaemonWorld, STORE_OUTAGE, sleep } from "../harness/otr-daemon.js";
import { isBad } from "../harness/otr-kill.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";


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

  it("down: nothing reaches IRC, Alice is told once, the bridge keeps running; up again: every message arrives in order in the same conversation", async () => {
    await w.startDaemon();
    await w.privateConversation();
    server.down();
    w.wire.update();
    const dataBefore = w.wire.dataMessages;
    const texts = Array.from({ length: 12 }, (_, i) => `while the database is down ${i}`);
    const from = w.alice.mark();
    const lib = w.kate.mark();
    for (const t of texts) await w.alice.sendText(w.room, t);
    // Synapse retries the refused transaction meanwhile (2 s, 4 s, 8 s): none of them may get through.
    await w.assertStoreOutageHolds({ from, lib, dataBefore, settleMs: 10_000, what: "the database is down" });

    const upAt = Date.now();
    server.up();
    for (const t of texts) await w.kate.waitForText(t, lib);
    console.log(`# pg-restart: ${texts.length} messages kept by Synapse while PostgreSQL was down reached libotr ${((Date.now() - upAt) / 1000).toFixed(1)} s after it came back`);
    await sleep(2000);
    const read = w.kateRead(lib);
    assert.deepEqual(read, texts, "every message arrived once, in order");
    assert.equal((await w.readyReport()).status, 200, "/ready is back to 200");
    for (let i = 0; i < 3; i++) await w.exchange(`after the restart ${i}`);
    await w.alice.sync({ timeoutMs: 1000 }).catch(() => undefined);
    assert.equal(w.notices(from, STORE_OUTAGE).length, 1, "one notice for the whole outage");
    w.wire.update();
    assert.equal(w.wire.reuses, 0, "a (key, counter) pair was used twice");
    assert.equal(w.wire.announceConflicts, 0);
    assert.deepEqual(w.kate.events.slice(w.secureMark).filter(isBad), [], "libotr saw a new AKE, an end, plaintext or an unreadable message");
    for (const t of texts) assert.ok(!w.tap.sawSent(t), "plaintext on IRC");
  });
});
