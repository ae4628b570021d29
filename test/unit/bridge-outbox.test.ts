// IRC → Matrix through a homeserver outage (src/bridge/outbox.ts): order per room, retries with one transaction id,
// waiting rooms written to the store and sent again after a restart, permanent refusals, the bound and its notice.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MatrixOutbox, throughOutbox } from "../../src/bridge/outbox.js";
import { MemoryStore } from "../../src/store/memory.js";
import type { MatrixDelivery, MatrixPort } from "../../src/bridge/ports.js";
import { FakeMatrix, silentLogger } from "./bridge-fakes.js";

const R1 = "!one:x";
const R2 = "!two:x";
const G = "@irc_local_bob:x";

/** A homeserver that can be taken down (every call fails as unreachable) or made to refuse one room for good. */
class FakeHomeserver implements MatrixDelivery {
  up = true;
  refuse = new Set<string>();
  slowMs = 0;
  /** Events it kept: one per transaction id, as Synapse dedupes them. */
  readonly events: Array<{ roomId: string; from: string | null; body: string; txnId: string }> = [];
  readonly calls: string[] = [];
  async deliver(roomId: string, from: string | null, content: Record<string, unknown>, txnId: string): Promise<string> {
    this.calls.push(txnId);
    if (this.slowMs) await new Promise((r) => setTimeout(r, this.slowMs));
    await new Promise((r) => setImmediate(r));
    if (!this.up) throw Object.assign(new Error("down"), { code: "ECONNREFUSED" });
    if (this.refuse.has(roomId)) throw Object.assign(new Error("forbidden"), { code: "homeserver-refused-M_FORBIDDEN", transient: false });
    if (!this.events.some((e) => e.txnId === txnId)) this.events.push({ roomId, from, body: String(content["body"]), txnId });
    return `$${txnId}`;
  }
  bodies(roomId: string): string[] {
    return this.events.filter((e) => e.roomId === roomId).map((e) => e.body);
  }
}

const text = (body: string) => ({ msgtype: "m.text", body });
const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), `timed out waiting for ${what}`);
};

function outbox(store: MemoryStore, hs: FakeHomeserver, extra: Partial<ConstructorParameters<typeof MatrixOutbox>[0]> = {}) {
  return new MatrixOutbox({ store, matrix: hs, logger: silentLogger, maxMessages: 100, maxAgeMs: 3_600_000, retryFirstMs: 5, retryMaxMs: 20, slowMs: 1_000, ...extra });
}

test("with the homeserver up, messages go straight out in order and nothing is written to the store", async () => {
  const store = new MemoryStore();
  const hs = new FakeHomeserver();
  const ob = outbox(store, hs);
  let adds = 0;
  const add = store.outboxAdd.bind(store);
  store.outboxAdd = async (r) => { adds++; return add(r); };
  await Promise.all([1, 2, 3].map((i) => ob.send(R1, G, text(`m${i}`))));
  await ob.idle();
  assert.deepEqual(hs.bodies(R1), ["m1", "m2", "m3"]);
  assert.equal(adds, 0);
});

test("while the homeserver is down a room's messages wait in the store, in order; once it is back each arrives once, and other rooms are not held up", async () => {
  const store = new MemoryStore();
  const hs = new FakeHomeserver();
  const ob = outbox(store, hs);
  hs.up = false;
  for (let i = 1; i <= 5; i++) await ob.send(R1, G, text(`down ${i}`));
  assert.deepEqual((await store.outboxPending()).map((e) => e.roomId), [R1, R1, R1, R1, R1], "every waiting message is in the store");
  await until(() => hs.calls.length >= 4, "retries");
  hs.up = true;
  await ob.send(R1, G, text("after"));
  await ob.idle();
  assert.deepEqual(hs.bodies(R1), ["down 1", "down 2", "down 3", "down 4", "down 5", "after"]);
  assert.deepEqual(await store.outboxPending(), [], "delivered messages leave the store");
  const first = hs.calls[0]!;
  assert.ok(hs.calls.filter((c) => c === first).length >= 3, "every try of a message uses its one transaction id");
});

test("a room the homeserver refuses for good drops that message and goes on; another room is unaffected", async () => {
  const store = new MemoryStore();
  const hs = new FakeHomeserver();
  hs.refuse.add(R1);
  const dropped: string[] = [];
  const ob2 = new MatrixOutbox({ store, matrix: hs, logger: silentLogger, maxMessages: 100, maxAgeMs: 3_600_000, metrics: { dropped: (r) => void dropped.push(r) } });
  await ob2.send(R1, G, text("refused"));
  await ob2.send(R2, G, text("fine"));
  await ob2.idle();
  assert.deepEqual(hs.bodies(R2), ["fine"]);
  assert.deepEqual(hs.bodies(R1), []);
  assert.deepEqual(dropped, ["refused"]);
});

test("a slow first try makes the room wait: what is queued behind it is written to the store", async () => {
  const store = new MemoryStore();
  const hs = new FakeHomeserver();
  hs.slowMs = 80;
  const ob = outbox(store, hs, { slowMs: 20 });
  const a = ob.send(R1, G, text("slow"));
  const b = ob.send(R1, G, text("behind"));
  await Promise.all([a, b]);
  const kept = await store.outboxPending();
  assert.equal(kept.length, 2, "both written once the first try was slow");
  await ob.idle();
  assert.deepEqual(hs.bodies(R1), ["slow", "behind"]);
  assert.deepEqual(await store.outboxPending(), []);
});

test("after a restart the kept messages go out first, in order, with their transaction ids (a message the homeserver had already taken is not doubled)", async () => {
  const store = new MemoryStore();
  const hs = new FakeHomeserver();
  hs.up = false;
  const ob = outbox(store, hs);
  for (let i = 1; i <= 3; i++) await ob.send(R1, G, text(`kept ${i}`));
  await ob.send(R2, null, text("bot line"));
  await ob.close();
  // The homeserver took the first one just before the crash, but its answer was lost.
  const [k1] = await store.outboxPending();
  hs.up = true;
  await hs.deliver(k1!.roomId, G, text("kept 1"), k1!.txnId);
  const next = outbox(store, hs);
  assert.equal(await next.restore(), 4);
  await next.send(R1, G, text("new"));
  await next.idle();
  assert.deepEqual(hs.bodies(R1), ["kept 1", "kept 2", "kept 3", "new"]);
  assert.deepEqual(hs.events.filter((e) => e.roomId === R2).map((e) => [e.from, e.body]), [[null, "bot line"]]);
  assert.deepEqual(await store.outboxPending(), []);
});

test("beyond the bound, messages are dropped and the room gets one notice where they were, with how many", async () => {
  const store = new MemoryStore();
  const hs = new FakeHomeserver();
  hs.up = false;
  const ob = outbox(store, hs, { maxMessages: 3 });
  for (let i = 1; i <= 7; i++) await ob.send(R1, G, text(`m${i}`));
  assert.equal(ob.size, 3);
  hs.up = true;
  await ob.idle();
  await ob.send(R1, G, text("after"));
  await ob.idle();
  const bodies = hs.bodies(R1);
  assert.deepEqual(bodies.slice(0, 3), ["m1", "m2", "m3"]);
  assert.match(bodies[3]!, /^4 messages from IRC could not be kept/);
  assert.deepEqual(bodies.slice(4), ["after"]);
});

test("a message older than max age when its turn comes is dropped and told", async () => {
  const store = new MemoryStore();
  const hs = new FakeHomeserver();
  hs.up = false;
  const ob = outbox(store, hs, { maxAgeMs: 30 });
  await ob.send(R1, G, text("old"));
  await new Promise((r) => setTimeout(r, 60));
  hs.up = true;
  await ob.idle();
  assert.equal(hs.bodies(R1).length, 1);
  assert.match(hs.bodies(R1)[0]!, /^1 message from IRC could not be kept/);
  assert.deepEqual(await store.outboxPending(), []);
});

test("a store that cannot write leaves waiting messages in memory: still delivered once the homeserver is back", async () => {
  const store = new MemoryStore();
  const hs = new FakeHomeserver();
  hs.up = false;
  store.outboxAdd = async () => { throw Object.assign(new Error("disk full"), { code: "database-error" }); };
  const ob = outbox(store, hs);
  await ob.send(R1, G, text("a"));
  await ob.send(R1, G, text("b"));
  hs.up = true;
  await ob.idle();
  assert.deepEqual(hs.bodies(R1), ["a", "b"]);
});

test("the port through the outbox sends m.room.message content and leaves every other call to the port", async () => {
  const store = new MemoryStore();
  const hs = new FakeHomeserver();
  const ob = outbox(store, hs);
  const fake = new FakeMatrix();
  const port = throughOutbox<MatrixPort>(fake, ob);
  await port.send(R1, G, "emote", "waves", { "x.extra": 1 });
  await ob.idle();
  assert.deepEqual(hs.bodies(R1), ["waves"]);
  assert.deepEqual(fake.sent, [], "not through the port's own send");
  assert.equal(port.ghostUserId("local", "bob"), fake.ghostUserId("local", "bob"));
  await port.sendState(R1, null, "m.room.topic", "", { topic: "t" });
  assert.equal(fake.states.length, 1);
  // It keeps each room's call order (queued at the call), which lets the DM path not hold its queue on a send.
  assert.equal(port.sendsInOrder, true);
  assert.equal((fake as MatrixPort).sendsInOrder, undefined);
  const unawaited = [port.send(R1, G, "text", "a"), port.send(R1, G, "text", "b"), port.send(R1, G, "text", "c")];
  await Promise.all(unawaited);
  await ob.idle();
  assert.deepEqual(hs.bodies(R1), ["waves", "a", "b", "c"]);
});
