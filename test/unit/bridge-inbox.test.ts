// At-least-once Matrix → IRC in the use cases (src/bridge/inbox.ts, core.ts): an event is done only after its IRC
// lines were taken by the socket, redeliveries are dropped by event id, and after a restart the events still
// pending are handed on before anything new of their rooms.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BridgeCore } from "../../src/bridge/core.js";
import { MatrixInbox } from "../../src/bridge/inbox.js";
import { MemoryStore } from "../../src/store/memory.js";
import type { Store } from "../../src/store/types.js";
import type { PuppetEvents, PuppetRequest } from "../../src/bridge/ports.js";
import { FakeMatrix, FakePuppet, silentLogger } from "./bridge-fakes.js";

const ALICE = "@alice:test.local";
const MGMT = "!mgmt:test.local";

/** A puppet whose socket takes lines only when the test says so. */
class PacedPuppet extends FakePuppet {
  private waiters: (() => void)[] = [];
  whenSent(done: () => void) { this.waiters.push(done); }
  /** The socket took every line so far. */
  flush() { const w = this.waiters; this.waiters = []; w.forEach((f) => f()); }
}

function world(store: Store, inbox: MatrixInbox) {
  const matrix = new FakeMatrix();
  const puppets: PacedPuppet[] = [];
  const core = new BridgeCore({
    store, matrix, inbox, logger: silentLogger,
    createPuppet: (req: PuppetRequest, events: PuppetEvents) => {
      const p = new PacedPuppet(req, events);
      puppets.push(p);
      return p;
    },
    networks: [{ id: "local", name: "Local IRC", nickTemplate: "{localpart}" }],
    permission: () => "user",
  });
  return { matrix, core, puppets };
}

const msg = (n: number, roomId: string) => ({ type: "m.room.message", event_id: `$m${n}`, room_id: roomId, sender: ALICE, content: { msgtype: "m.text", body: `message ${n}` } });
const settle = () => new Promise((r) => setImmediate(r));

async function dmWorld(store: Store) {
  const inbox = new MatrixInbox({ store, logger: silentLogger });
  await inbox.replay(() => undefined);
  const w = world(store, inbox);
  w.matrix.joinedMembersResult = [ALICE, w.matrix.botUserId];
  await w.core.onInvite({ roomId: MGMT, inviter: ALICE, invitee: w.matrix.botUserId, isDirect: true });
  await w.core.onMessage({ roomId: MGMT, sender: ALICE, eventId: "$connect", kind: "text", body: "connect local" });
  w.puppets[0]!.up();
  w.puppets[0]!.events.onMessage({ kind: "privmsg", from: "Bob", text: "hi" });
  await w.core.idle();
  const roomId = (await store.getDmRoom(ALICE, "local", "bob"))!;
  return { ...w, inbox, roomId, p: w.puppets[0]! };
}

/** What the appservice hook and the adapter do with one live event. */
async function deliver(w: { core: BridgeCore }, inbox: MatrixInbox, ev: ReturnType<typeof msg>): Promise<boolean> {
  const [fresh] = await inbox.record([{ eventId: ev.event_id, roomId: ev.room_id, event: ev }]);
  if (fresh) void w.core.onMessage({ roomId: ev.room_id, sender: ev.sender, eventId: ev.event_id, kind: "text", body: ev.content.body });
  return fresh!;
}

test("an event is done only once the socket took its IRC lines; until then a restart hands it on again", async () => {
  const store = new MemoryStore();
  const w = await dmWorld(store);
  await deliver(w, w.inbox, msg(1, w.roomId));
  await w.core.idle();
  await settle();
  assert.deepEqual(w.p.lines.map((l) => l.text), ["message 1"], "queued on the puppet");
  assert.deepEqual((await store.inboxPending()).map((e) => e.eventId), ["$m1"], "not done while the line waits for the socket");
  w.p.flush();
  await settle();
  await w.inbox.close();
  assert.deepEqual(await store.inboxPending(), []);
});

test("a redelivered event (a retried transaction, a replay) is dropped by its id, before and after it is done", async () => {
  const store = new MemoryStore();
  const w = await dmWorld(store);
  assert.equal(await deliver(w, w.inbox, msg(1, w.roomId)), true);
  assert.equal(await deliver(w, w.inbox, msg(1, w.roomId)), false, "pending: dropped");
  await w.core.idle();
  w.p.flush();
  await settle();
  await settle();
  assert.equal(await deliver(w, w.inbox, msg(1, w.roomId)), false, "done: still dropped");
  await w.core.idle();
  assert.deepEqual(w.p.lines.map((l) => l.text), ["message 1"], "sent once");
});

test("after a restart the pending events go out first, in order, then the new ones; recording does not wait for the replay", async () => {
  const store = new MemoryStore();
  const before = await dmWorld(store);
  for (let n = 1; n <= 5; n++) await deliver(before, before.inbox, msg(n, before.roomId));
  await before.core.idle();
  before.p.flush(); // 1..5 left; then the bridge "dies" before 6..8 reach the socket
  await settle();
  await settle();
  for (let n = 6; n <= 8; n++) await deliver(before, before.inbox, msg(n, before.roomId));
  await before.core.idle();
  assert.deepEqual((await store.inboxPending()).map((e) => e.eventId), ["$m6", "$m7", "$m8"]);

  const replayed: number[] = [];
  const inbox = new MatrixInbox({ store, logger: silentLogger, onReplayed: (n) => replayed.push(n) });
  const after = world(store, inbox);
  // A live event arrives before the replay (the bridge is still starting). Recording it must not wait for the
  // replay: the start itself waits for transactions queued behind this one (the encryption probe). It is stored
  // but not passed on live: the replay hands it on, after the older ones.
  assert.deepEqual(await inbox.record([{ eventId: "$m9", roomId: before.roomId, event: msg(9, before.roomId) }]), [false]);
  await after.core.connections.connect(ALICE, "local");
  const p = after.puppets[0]!;
  p.up();
  await inbox.replay((ev) => {
    const e = ev as ReturnType<typeof msg>;
    void after.core.onMessage({ roomId: e.room_id, sender: e.sender, eventId: e.event_id, kind: "text", body: e.content.body });
  });
  // After the replay, new events go live again.
  assert.deepEqual(await inbox.record([{ eventId: "$m10", roomId: before.roomId, event: msg(10, before.roomId) }]), [true]);
  void after.core.onMessage({ roomId: before.roomId, sender: ALICE, eventId: "$m10", kind: "text", body: "message 10" });
  await after.core.idle();
  assert.deepEqual(p.lines.map((l) => l.text), ["message 6", "message 7", "message 8", "message 9", "message 10"]);
  assert.deepEqual(replayed, [4], "counted as handed on again");
  p.flush();
  await settle();
  await settle();
  await inbox.close();
  assert.deepEqual(await store.inboxPending(), []);
});

test("a done mark the store refuses leaves the event pending (a duplicate later, never a loss)", async () => {
  const store = new MemoryStore();
  const w = await dmWorld(store);
  await deliver(w, w.inbox, msg(1, w.roomId));
  await w.core.idle();
  const real = store.inboxDone.bind(store);
  store.inboxDone = async () => { throw Object.assign(new Error("disk full"), { code: "database-error" }); };
  w.p.flush();
  await settle();
  await settle();
  await w.inbox.close();
  store.inboxDone = real;
  assert.deepEqual((await store.inboxPending()).map((e) => e.eventId), ["$m1"]);
});

test("pending events the store cannot open stay pending, and new events are still taken", async () => {
  const store = new MemoryStore();
  await store.inboxRecord([{ eventId: "$old", roomId: "!r:x", event: new TextEncoder().encode("{}") }]);
  const real = store.inboxPending.bind(store);
  store.inboxPending = async () => { throw Object.assign(new Error("corrupt"), { code: "sealed-data-corrupt" }); };
  const errors: string[] = [];
  const inbox = new MatrixInbox({ store, logger: { ...silentLogger, error: (m: string) => void errors.push(m) } });
  const handed: unknown[] = [];
  assert.equal(await inbox.replay((ev) => handed.push(ev)), 0);
  assert.deepEqual(handed, []);
  assert.equal(errors.length, 1);
  assert.deepEqual(await inbox.record([{ eventId: "$new", roomId: "!r:x", event: { type: "m.room.message" } }]), [true]);
  store.inboxPending = real;
  assert.deepEqual((await store.inboxPending()).map((e) => e.eventId), ["$old", "$new"]);
});

const failing = (what: string) => async () => { throw Object.assign(new Error(what), { code: "database-error" }); };
const until = async (cond: () => boolean) => { for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 5)); };

test("events the store refuses while it still writes (their content, not an outage) are handed on unrecorded, with an error logged", async () => {
  const store = new MemoryStore();
  const errors: string[] = [];
  const told: string[][] = [];
  const inbox = new MatrixInbox({ store, logger: { ...silentLogger, error: (m: string) => void errors.push(m) }, onUnavailable: (r) => void told.push(r) });
  await inbox.replay(() => undefined);
  store.inboxRecord = failing("row too big");
  assert.deepEqual(await inbox.record([{ eventId: "$big", roomId: "!r:x", event: { type: "m.room.message" } }]), [true]);
  assert.equal(errors.length, 1);
  assert.deepEqual(told, []);
  assert.equal(inbox.storeDown, false);
});

test("while the store cannot write, transactions are refused (the homeserver keeps them), each room is told once, and a write that works again ends it", async () => {
  const store = new MemoryStore();
  const told: string[][] = [];
  let recovered = 0;
  const inbox = new MatrixInbox({ store, logger: silentLogger, probeIntervalMs: 10, onUnavailable: (r) => void told.push(r), onRecovered: () => void recovered++ });
  await inbox.replay(() => undefined);
  const realRecord = store.inboxRecord.bind(store);
  const realPut = store.putState.bind(store);
  store.inboxRecord = failing("disk full");
  store.putState = failing("disk full");
  const ev = (id: string, roomId: string) => ({ eventId: id, roomId, event: { type: "m.room.message", event_id: id } });
  await assert.rejects(inbox.record([ev("$1", "!a:x"), ev("$2", "!a:x")]), { code: "store-unavailable" });
  await assert.rejects(inbox.record([ev("$3", "!a:x")]), { code: "store-unavailable" });
  await assert.rejects(inbox.record([ev("$4", "!b:x"), ev("$5", "!a:x")]), { code: "store-unavailable" });
  assert.deepEqual(told, [["!a:x"], ["!b:x"]], "one notice per room per outage");
  assert.equal(inbox.storeDown, true);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(recovered, 0, "no recovery while writes still fail");
  store.inboxRecord = realRecord;
  store.putState = realPut;
  await until(() => recovered > 0);
  assert.equal(recovered, 1, "the homeserver is asked to resend once the store writes");
  assert.equal(inbox.storeDown, false);
  assert.deepEqual(await inbox.record([ev("$1", "!a:x")]), [true], "the resent transaction is taken");
  assert.deepEqual((await store.inboxPending()).map((e) => e.eventId), ["$1"], "nothing was recorded while refused");
  store.putState = failing("down again");
  store.inboxRecord = failing("down again");
  await assert.rejects(inbox.record([ev("$3", "!a:x")]), { code: "store-unavailable" });
  assert.deepEqual(told, [["!a:x"], ["!b:x"], ["!a:x"]], "a new outage is told again");
  await inbox.close();
});

test("a store outage is told in a DM room by its ghost, and in a management room by the bot", async () => {
  const store = new MemoryStore();
  const w = await dmWorld(store);
  const ghost = w.matrix.ghostUserId("local", "bob");
  w.core.storeUnavailable([w.roomId, MGMT]);
  await settle();
  const notices = w.matrix.sent.filter((s) => /database is unavailable/.test(s.body));
  assert.deepEqual(notices.map((s) => [s.roomId, s.from, s.kind]), [[w.roomId, ghost, "notice"], [MGMT, null, "notice"]]);
});
