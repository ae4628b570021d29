// Issue 15, IRC → Matrix through a homeserver outage: Synapse stopped for 60 s while two IRC contacts keep writing
// to Alice, one in an OTR conversation (libotr) and one in plaintext; the real daemon on SQLite and, in the same
// 60 s (a second world beside the first), on PostgreSQL. Once Synapse is back every line reaches its DM room, in
// order, exactly once, and the outbox is empty again. Without the outbox the lines of the outage are lost.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { OtrDaemonWorld, sleep, LONG } from "../harness/otr-daemon.js";
import { isBad } from "../harness/otr-kill.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";
import { connectIrc, type IrcClient } from "../harness/irc-client.js";

const OUTAGE_S = 60;
const DAVE = "@irc_local_dave:localhost";

interface Side { name: string; w: OtrDaemonWorld; dave?: IrcClient; daveRoom?: string }

describe("Synapse down for 60 s while IRC contacts write: every line arrives once it is back", { timeout: 1_800_000 }, () => {
  let pg: PostgresServer;
  let url = "";
  const sqlite: Side = { name: "sqlite", w: new OtrDaemonWorld(() => `{ engine: sqlite, sqlite_path: ${sqlite.w.dir}/bridge.db, master_key_file: ${sqlite.w.dir}/master.key }`) };
  const postgres: Side = { name: "postgres", w: new OtrDaemonWorld(() => `{ engine: postgres, postgres_url: "${url}", master_key_file: ${postgres.w.dir}/master.key }`) };
  const sides = [sqlite, postgres];

  before(async () => {
    pg = await startPostgres();
    url = await pg.newDatabase();
    await Promise.all(sides.map((s) => s.w.start()));
  });
  after(async () => {
    for (const s of sides) {
      await s.dave?.quit().catch(() => undefined);
      await s.w.stop();
    }
    await pg?.stop();
  });

  async function setUp(s: Side): Promise<void> {
    const w = s.w;
    await w.startDaemon();
    await w.privateConversation();
    s.dave = await connectIrc(w.irc.host, w.irc.port, "Dave");
    s.dave.privmsg("alice", "dave before");
    s.daveRoom = await w.alice.waitForInvite((_r, state) => state.some((e) => e.type === "m.room.member" && e.sender === DAVE), LONG);
    await w.alice.join(s.daveRoom);
    await w.alice.waitForMessage(s.daveRoom, "dave before", { sender: DAVE, timeoutMs: LONG });
  }

  it(`${OUTAGE_S} s without the homeserver, on SQLite and PostgreSQL at once: each OTR and plaintext line arrives in order, once`, async () => {
    await Promise.all(sides.map(setUp));
    const otrTexts = Array.from({ length: OUTAGE_S }, (_, i) => `otr while down ${i}`);
    const plainTexts = Array.from({ length: OUTAGE_S }, (_, i) => `plain while down ${i}`);
    const marks = sides.map((s) => s.w.alice.mark());
    await Promise.all(sides.map((s) => s.w.hs.down()));
    const downAt = Date.now();
    for (let i = 0; i < OUTAGE_S; i++) {
      for (const s of sides) {
        await s.w.kate.send(otrTexts[i]!);
        s.dave!.privmsg("alice", plainTexts[i]!);
      }
      await sleep(Math.max(0, downAt + (i + 1) * 1000 - Date.now()));
    }
    for (const s of sides) {
      const m = await s.w.metrics();
      assert.match(m, /^matrix_otr_irc_matrix_outbox_queued [1-9]/m, `${s.name}: lines wait in the outbox while Synapse is down`);
    }
    await Promise.all(sides.map((s) => s.w.hs.up()));
    const upAt = Date.now();
    await Promise.all(sides.map(async (s, k) => {
      const { w } = s;
      await w.alice.waitForMessage(w.room, otrTexts.at(-1)!, { timeoutMs: 300_000, from: marks[k]! });
      await w.alice.waitForMessage(s.daveRoom!, plainTexts.at(-1)!, { timeoutMs: 300_000, from: marks[k]! });
      console.log(`# hs-outage ${s.name}: the last lines arrived ${((Date.now() - upAt) / 1000).toFixed(1)} s after Synapse was back`);
    }));
    await sleep(3000);
    for (const [k, s] of sides.entries()) {
      const { w } = s;
      await w.alice.sync({ timeoutMs: 1000 }).catch(() => undefined);
      const bodies = (room: string) => w.alice.events.slice(marks[k]!).filter((e) => e.roomId === room && e.event.type === "m.room.message").map((e) => String(e.event.content.body));
      const otr = bodies(w.room).filter((b) => otrTexts.includes(b));
      const plain = bodies(s.daveRoom!).filter((b) => plainTexts.includes(b));
      console.log(`# hs-outage ${s.name}: ${otr.length}/${OUTAGE_S} OTR and ${plain.length}/${OUTAGE_S} plaintext lines shown after ${OUTAGE_S} s without Synapse`);
      assert.deepEqual(otr, otrTexts, `${s.name}: every OTR line once, in order`);
      assert.deepEqual(plain, plainTexts, `${s.name}: every plaintext line once, in order`);
      const m = await w.metrics();
      assert.match(m, /^matrix_otr_irc_matrix_outbox_queued 0$/m, `${s.name}: the outbox is empty again`);
      const recorded = Number(/^matrix_otr_irc_matrix_outbox_recorded_total (\d+)/m.exec(m)?.[1] ?? 0);
      assert.ok(recorded >= 2 * OUTAGE_S - 2, `${s.name}: the waiting lines were written to the store (${recorded})`);
      assert.doesNotMatch(m, /^matrix_otr_irc_matrix_outbox_dropped_total\{[^}]*\} [1-9]/m, `${s.name}: nothing dropped`);
      assert.deepEqual(w.kate.events.slice(w.secureMark).filter(isBad), [], `${s.name}: libotr saw a new AKE, an end or an unreadable message`);
      // The conversation goes on both ways after the outage.
      await w.exchange("after the outage");
    }
  });
});
