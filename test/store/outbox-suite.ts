// The Matrix outbox part of the Store contract (docs/store.md "IRC → Matrix delivery"), run against every engine by
// storeContract: recording order across rooms and reopen, delete, refusal of bad input with nothing recorded.
import { it } from "node:test";
import assert from "node:assert/strict";
import type { Store } from "../../src/store/types.js";
import { rejectsCode, type EngineUnderTest } from "./suite.js";

const enc = (s: string) => new TextEncoder().encode(s);
const msg = (n: number, room = "!dm:x") => ({ roomId: room, txnId: `motr.o.${n}`, message: enc(`{"body":"line ${n}"}`), queuedAt: 1_700_000_000_000 + n });

export function outboxContract(engine: EngineUnderTest, make: () => Promise<Store>, track: (s: Store) => void): void {
  it("outbox: records messages in order with their room, transaction id, body and time; deletes by seq", async () => {
    const s = await make();
    const a = await s.outboxAdd([msg(1), msg(2, "!other:x"), msg(3)]);
    const b = await s.outboxAdd([msg(4)]);
    assert.equal(a.length, 3);
    assert.ok([...a, ...b].every((x, i, all) => i === 0 || x > all[i - 1]!), "seq increases across calls");
    const p = await s.outboxPending();
    assert.deepEqual(p.map((e) => [e.roomId, e.txnId, e.queuedAt]), [msg(1), msg(2, "!other:x"), msg(3), msg(4)].map((m) => [m.roomId, m.txnId, m.queuedAt]));
    assert.deepEqual(p.map((e) => e.seq), [...a, ...b]);
    assert.equal(new TextDecoder().decode(p[2]!.message), `{"body":"line 3"}`);
    await s.outboxDelete([a[1]!, a[0]!, 999_999]);
    assert.deepEqual((await s.outboxPending()).map((e) => e.txnId), ["motr.o.3", "motr.o.4"]);
    assert.deepEqual(await s.outboxAdd([]), []);
    await s.outboxDelete([]);
  });

  it("outbox: refuses rooms that are not room ids, bad transaction ids, empty or huge bodies (invalid-argument), recording nothing", async () => {
    const s = await make();
    await rejectsCode(s.outboxAdd([msg(1), { ...msg(2), roomId: "#alias:x" }]), "invalid-argument");
    await rejectsCode(s.outboxAdd([{ ...msg(2), txnId: "a/b" }]), "invalid-argument");
    await rejectsCode(s.outboxAdd([{ ...msg(2), txnId: "" }]), "invalid-argument");
    await rejectsCode(s.outboxAdd([{ ...msg(2), message: new Uint8Array(0) }]), "invalid-argument");
    await rejectsCode(s.outboxAdd([{ ...msg(2), message: new Uint8Array(300 * 1024) }]), "invalid-argument");
    await rejectsCode(s.outboxAdd([{ ...msg(2), queuedAt: -1 }]), "invalid-argument");
    await rejectsCode(s.outboxDelete([0]), "invalid-argument");
    assert.deepEqual(await s.outboxPending(), []);
  });

  if (engine.reopen) {
    it("outbox: pending messages and their order survive a reopen; new ones come after them", async () => {
      const s = await make();
      const [first] = await s.outboxAdd([msg(1), msg(2), msg(3)]);
      await s.outboxDelete([first!]);
      const t = await engine.reopen!(s);
      track(t);
      assert.deepEqual((await t.outboxPending()).map((e) => e.txnId), ["motr.o.2", "motr.o.3"]);
      await t.outboxAdd([msg(4)]);
      assert.deepEqual((await t.outboxPending()).map((e) => e.txnId), ["motr.o.2", "motr.o.3", "motr.o.4"]);
    });
  }
}
