// The Matrix inbox part of the Store contract (docs/store.md "Matrix → IRC delivery"), run against every engine by
// storeContract: idempotent recording by event id, arrival order across reopen, done ids that keep refusing a
// redelivery after the body is gone.
import { it } from "node:test";
import assert from "node:assert/strict";
import type { Store } from "../../src/store/types.js";
import { INBOX_DONE_MAX } from "../../src/store/inbox.js";
import { rejectsCode, type EngineUnderTest } from "./suite.js";

const enc = (s: string) => new TextEncoder().encode(s);
const ev = (n: number, room = "!dm:x") => ({ eventId: `$e${n}`, roomId: room, event: enc(`{"body":"message ${n}"}`) });

export function inboxContract(engine: EngineUnderTest, make: () => Promise<Store>, track: (s: Store) => void): void {
  it("inbox: records events once by id, lists pending ones in arrival order with their bodies", async () => {
    const s = await make();
    assert.deepEqual(await s.inboxRecord([ev(1), ev(2, "!other:x"), ev(3)]), [true, true, true]);
    assert.deepEqual(await s.inboxRecord([ev(2), ev(4), ev(4)]), [false, true, false], "a redelivered id, and an id twice in one batch, are not new");
    const p = await s.inboxPending();
    assert.deepEqual(p.map((e) => e.eventId), ["$e1", "$e2", "$e3", "$e4"]);
    assert.deepEqual(p.map((e) => e.roomId), ["!dm:x", "!other:x", "!dm:x", "!dm:x"]);
    assert.equal(new TextDecoder().decode(p[2]!.event), `{"body":"message 3"}`);
    assert.ok(p.every((e, i) => i === 0 || e.seq > p[i - 1]!.seq), "seq increases");
    assert.deepEqual(await s.inboxRecord([]), []);
  });

  it("inbox: a done event leaves the pending list and its id keeps refusing a redelivery", async () => {
    const s = await make();
    await s.inboxRecord([ev(1), ev(2), ev(3)]);
    await s.inboxDone(["$e2", "$unknown"]);
    assert.deepEqual((await s.inboxPending()).map((e) => e.eventId), ["$e1", "$e3"]);
    assert.deepEqual(await s.inboxRecord([ev(2)]), [false], "done, not recorded again");
    await s.inboxDone(["$e1", "$e3", "$e3"]);
    assert.deepEqual(await s.inboxPending(), []);
    assert.deepEqual(await s.inboxRecord([ev(1), ev(5)]), [false, true]);
    assert.deepEqual((await s.inboxPending()).map((e) => e.eventId), ["$e5"]);
  });

  it("inbox: refuses ids that are not Matrix event/room ids and bodies that are empty or huge (invalid-argument), recording nothing", async () => {
    const s = await make();
    await rejectsCode(s.inboxRecord([ev(1), { eventId: "e2", roomId: "!r:x", event: enc("x") }]), "invalid-argument");
    await rejectsCode(s.inboxRecord([{ eventId: "$e2", roomId: "#alias:x", event: enc("x") }]), "invalid-argument");
    await rejectsCode(s.inboxRecord([{ eventId: "$e2", roomId: "!r:x", event: new Uint8Array(0) }]), "invalid-argument");
    await rejectsCode(s.inboxRecord([{ eventId: "$e2", roomId: "!r:x", event: new Uint8Array(300 * 1024) }]), "invalid-argument");
    await rejectsCode(s.inboxRecord([{ eventId: "$e\n2", roomId: "!r:x", event: enc("x") }]), "invalid-argument");
    await rejectsCode(s.inboxDone(["not-an-event"]), "invalid-argument");
    assert.deepEqual(await s.inboxPending(), []);
  });

  it("inbox: remembers at most INBOX_DONE_MAX done ids, forgetting the oldest first; pending ones are never pruned", async () => {
    const s = await make();
    await s.inboxRecord([ev(0)]);
    const batch = (from: number, n: number) => Array.from({ length: n }, (_, i) => ev(from + i));
    for (let from = 1; from <= INBOX_DONE_MAX + 5; from += 1000) {
      const b = batch(from, Math.min(1000, INBOX_DONE_MAX + 6 - from));
      await s.inboxRecord(b);
      await s.inboxDone(b.map((e) => e.eventId));
    }
    assert.deepEqual((await s.inboxPending()).map((e) => e.eventId), ["$e0"]);
    assert.deepEqual(await s.inboxRecord([ev(1), ev(5), ev(6), ev(INBOX_DONE_MAX + 5)]), [true, true, false, false], "the 5 oldest done ids are forgotten");
  });

  if (engine.reopen) {
    it("inbox: pending events, their order and done ids survive a reopen; new events come after the old ones", async () => {
      const s = await make();
      await s.inboxRecord([ev(1), ev(2), ev(3)]);
      await s.inboxDone(["$e1"]);
      const t = await engine.reopen!(s);
      track(t);
      assert.deepEqual((await t.inboxPending()).map((e) => e.eventId), ["$e2", "$e3"]);
      assert.deepEqual(await t.inboxRecord([ev(1), ev(4)]), [false, true]);
      const p = await t.inboxPending();
      assert.deepEqual(p.map((e) => e.eventId), ["$e2", "$e3", "$e4"]);
      assert.equal(new TextDecoder().decode(p[0]!.event), `{"body":"message 2"}`);
    });
  }
}
