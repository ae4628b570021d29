// The room-mapping cache in front of a store: lookups answered from memory, every mapping write seen at once,
// no stale answer kept from a lookup that raced a write, no answer after close.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore } from "../../src/store/memory.js";
import { cacheRoomMappings } from "../../src/store/room-cache.js";
import type { Store } from "../../src/store/types.js";

const U = "@alice:example.org";
const NET = "libera";

function counted(inner: Store): { store: Store; calls: Map<string, number>; gate: { hold: Promise<void> | null } } {
  const calls = new Map<string, number>();
  const gate: { hold: Promise<void> | null } = { hold: null };
  const store = new Proxy(inner, {
    get(obj, prop, receiver) {
      const v = Reflect.get(obj, prop, receiver) as unknown;
      if (typeof v !== "function") return v;
      return async (...args: unknown[]) => {
        calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
        const answer = await (v as (...a: unknown[]) => Promise<unknown>).apply(obj, args);
        if (gate.hold) await gate.hold; // the answer is read, but reaches the caller late
        return answer;
      };
    },
  });
  return { store, calls, gate };
}

test("lookups reach the store once and are then answered from memory, 'no room' included", async () => {
  const { store: inner, calls } = counted(new MemoryStore());
  const s = cacheRoomMappings(inner);
  await inner.putDmRoom(U, NET, "bob", "!dm:x");
  for (let i = 0; i < 5; i++) {
    assert.equal(await s.getDmRoom(U, NET, "bob"), "!dm:x");
    assert.deepEqual(await s.findDmByRoom("!dm:x"), { userId: U, networkId: NET, foldedNick: "bob" });
    assert.equal(await s.findChannelByRoom("!dm:x"), null);
    assert.equal(await s.findManagementRoomOwner("!dm:x"), null);
  }
  assert.equal(calls.get("getDmRoom"), 1);
  assert.equal(calls.get("findDmByRoom"), 1);
  assert.equal(calls.get("findChannelByRoom"), 1);
  assert.equal(calls.get("findManagementRoomOwner"), 1);
  const k = (await s.findDmByRoom("!dm:x"))!;
  k.foldedNick = "mallory";
  assert.equal((await s.findDmByRoom("!dm:x"))!.foldedNick, "bob", "callers get copies");
});

test("every mapping write through it is seen by the next lookup, both directions", async () => {
  const s = cacheRoomMappings(new MemoryStore());
  assert.equal(await s.getDmRoom(U, NET, "bob"), null);
  await s.putDmRoom(U, NET, "bob", "!one:x");
  assert.equal(await s.getDmRoom(U, NET, "bob"), "!one:x");
  await s.putDmRoom(U, NET, "bob", "!two:x");
  assert.equal(await s.getDmRoom(U, NET, "bob"), "!two:x");
  assert.equal(await s.findDmByRoom("!one:x"), null);
  await s.deleteDmRoom(U, NET, "bob");
  assert.equal(await s.findDmByRoom("!two:x"), null);
  assert.equal(await s.getManagementRoom(U), null);
  await s.putManagementRoom(U, "!mgmt:x");
  assert.equal(await s.findManagementRoomOwner("!mgmt:x"), U);
  assert.equal(await s.getChannelRoom(NET, "#otr"), null);
  await s.putChannelRoom(NET, "#otr", "!chan:x");
  assert.deepEqual(await s.findChannelByRoom("!chan:x"), { networkId: NET, foldedChannel: "#otr" });
  await s.deleteChannelRoom(NET, "#otr");
  assert.equal(await s.getChannelRoom(NET, "#otr"), null);
  // A write the store refuses changes nothing, and the cache does not pretend otherwise.
  await s.putDmRoom(U, NET, "carol", "!c:x");
  await assert.rejects(s.putDmRoom(U, NET, "dave", "!c:x"), { code: "room-conflict" });
  assert.equal(await s.getDmRoom(U, NET, "dave"), null);
});

test("a lookup that read the old mapping while a write went on does not leave it cached", async () => {
  const { store: inner, gate } = counted(new MemoryStore());
  const s = cacheRoomMappings(inner);
  let release!: () => void;
  gate.hold = new Promise((r) => (release = r));
  const stale = s.getDmRoom(U, NET, "bob"); // reads "none", answers late
  await new Promise((r) => setImmediate(r));
  gate.hold = null;
  await s.putDmRoom(U, NET, "bob", "!dm:x");
  release();
  assert.equal(await stale, null);
  assert.equal(await s.getDmRoom(U, NET, "bob"), "!dm:x");
});

test("a bounded number of answers, the oldest dropped first; a closed store answers nothing from memory", async () => {
  const { store: inner, calls } = counted(new MemoryStore());
  const s = cacheRoomMappings(inner, 3);
  for (const n of ["a", "b", "c", "d"]) await s.getDmRoom(U, NET, n);
  await s.getDmRoom(U, NET, "d");
  await s.getDmRoom(U, NET, "b");
  assert.equal(calls.get("getDmRoom"), 4);
  await s.getDmRoom(U, NET, "a");
  assert.equal(calls.get("getDmRoom"), 5, "the oldest answer was dropped");
  await s.close();
  await assert.rejects(s.getDmRoom(U, NET, "b"), { code: "store-closed" });
});
