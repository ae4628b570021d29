// src/matrix/crypto through the in-process fake homeserver (test/harness/fake-crypto-hs.ts): two bridges, each
// with its own devices, in one encrypted room. Fast checks of what the e2e tests prove against Synapse: Megolm
// both ways, replays and tampering refused, a device reopened from its stored state, and no Megolm index used
// twice across a reopen.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { FakeCryptoHomeserver, MapCryptoStore, fakeBridge, type FakeBridge } from "../harness/fake-crypto-hs.js";
import { megolmIndex } from "../../src/matrix/crypto/megolm.js";
import type { RawEvent } from "../../src/matrix/crypto/rooms.js";

let hs: FakeCryptoHomeserver;
before(async () => { hs = await FakeCryptoHomeserver.start(); });
after(async () => { await hs.close(); });

const D = "fake.test";
const text = (ev: { content?: Record<string, unknown> }) => String(ev.content?.["body"] ?? "");
const messages = (b: FakeBridge) => b.received.filter((e) => e.type === "m.room.message").map(text);

interface Pair { a: FakeBridge; b: FakeBridge; ua: string; ub: string; room: string; storeA: MapCryptoStore }

async function pair(tag: string, storeA = new MapCryptoStore()): Promise<Pair> {
  const a = await fakeBridge(hs, `${tag}a_`, storeA);
  const b = await fakeBridge(hs, `${tag}b_`, new MapCryptoStore());
  const ua = `@${tag}a_ghost:${D}`, ub = `@${tag}b_ghost:${D}`;
  await a.crypto.device(ua);
  await b.crypto.device(ub);
  const room = hs.createRoom([ua, ub]);
  await hs.settle();
  return { a, b, ua, ub, room, storeA };
}

async function say(from: FakeBridge, room: string, user: string, body: string): Promise<RawEvent> {
  const id = await from.crypto.send(room, user, "m.room.message", { msgtype: "m.text", body });
  await hs.settle();
  const ev = hs.roomEvents(room).find((e) => e["event_id"] === id);
  assert.ok(ev, "the event reached the homeserver");
  return ev as RawEvent;
}

test("two devices of ours in one encrypted room exchange Megolm messages both ways", async () => {
  const { a, b, ua, ub, room } = await pair("t1");
  await say(a, room, ua, "hello from a");
  await say(b, room, ub, "hello from b ✓");
  await say(a, room, ua, "second from a");
  assert.deepEqual(messages(b), ["hello from a", "second from a"]);
  assert.deepEqual(messages(a), ["hello from b ✓"]);
  for (const e of [...a.received, ...b.received].filter((x) => x.type === "m.room.message")) assert.equal(e.unsigned?.["org.matrix_otr_irc.encrypted"], true);
  // The homeserver saw ciphertext only.
  assert.equal(hs.roomEvents(room).filter((e) => e["type"] === "m.room.encrypted").length, 3);
  assert.ok(!JSON.stringify(hs.roomEvents(room)).includes("hello"));
  assert.deepEqual([...a.undecryptable, ...b.undecryptable], []);
  assert.deepEqual(hs.unknown, []);
  await a.stop(); await b.stop();
});

test("a replayed event is refused as 'replayed' and a tampered one as 'tampered'; neither changes what follows", async () => {
  const { a, b, ua, room } = await pair("t2");
  const ev = await say(a, room, ua, "once only");
  assert.deepEqual(messages(b), ["once only"]);

  // The same ciphertext again under a new event id (a captured event re-sent).
  const replayed = await b.crypto.transaction({ events: [{ ...ev, event_id: "$replayed" }] });
  assert.deepEqual(replayed, []);
  assert.deepEqual(b.undecryptable.map((u) => [u.eventId, u.reason]), [["$replayed", "replayed"]]);

  // One flipped byte past the Megolm header (index stays readable): the MAC or signature no longer holds.
  const ct = Buffer.from(String(ev.content!["ciphertext"]), "base64");
  ct[ct.length - 70]! ^= 0x01;
  const tamperedCt = ct.toString("base64").replace(/=+$/, "");
  assert.equal(megolmIndex(tamperedCt), megolmIndex(String(ev.content!["ciphertext"])));
  const tampered = await b.crypto.transaction({ events: [{ ...ev, event_id: "$tampered", content: { ...ev.content, ciphertext: tamperedCt } }] });
  assert.deepEqual(tampered, []);
  assert.deepEqual(b.undecryptable.map((u) => [u.eventId, u.reason]), [["$replayed", "replayed"], ["$tampered", "tampered"]]);

  await say(a, room, ua, "still fine");
  assert.deepEqual(messages(b), ["once only", "still fine"]);
  await a.stop(); await b.stop();
});

test("a device reopened from its stored state keeps its identity keys and decrypts the next message", async () => {
  const p = await pair("t3");
  await say(p.b, p.room, p.ub, "before");
  assert.deepEqual(messages(p.a), ["before"]);
  const dev = await p.a.crypto.device(p.ua);
  const ids = { device: dev.deviceId, curve: dev.curve25519, ed: dev.ed25519 };
  const uploads = hs.calls.get("device_create");
  // What a SIGKILL right now would leave behind: the store as it is.
  const kept = p.storeA.copy();
  await p.a.stop();
  const a2 = await fakeBridge(hs, "t3a_", kept);
  const dev2 = await a2.crypto.device(p.ua);
  assert.deepEqual({ device: dev2.deviceId, curve: dev2.curve25519, ed: dev2.ed25519 }, ids);
  assert.equal(hs.calls.get("device_create"), uploads, "no new device was created");
  await say(p.b, p.room, p.ub, "after");
  assert.deepEqual(messages(a2), ["after"]);
  assert.deepEqual(a2.undecryptable, []);
  await a2.stop(); await p.b.stop();
});

/** Sends three messages, reopens the sender (killed, or stopped cleanly), sends one more: what was sent. */
async function reopenAfterThree(tag: string, killed: boolean): Promise<{ sent: Array<{ session: string; index: number }>; b: FakeBridge; a2: FakeBridge }> {
  const p = await pair(tag);
  const sent: Array<{ session: string; index: number }> = [];
  const mark = (ev: RawEvent) => sent.push({ session: String(ev.content!["session_id"]), index: megolmIndex(String(ev.content!["ciphertext"]))! });
  for (let i = 0; i < 3; i++) mark(await say(p.a, p.room, p.ua, `m${i}`));
  // Killed: the store exactly as it was when the third send returned. Stopped: what a clean stop leaves.
  const kept = killed ? p.storeA.copy() : p.storeA;
  await p.a.stop();
  const a2 = await fakeBridge(hs, `${tag}a_`, kept);
  mark(await say(a2, p.room, p.ua, "after reopen"));
  assert.deepEqual(sent.slice(0, 3).map((s) => s.index), [0, 1, 2]);
  // No (session, index) twice, and within a session the index only grows.
  const last = sent.at(-1)!;
  for (const s of sent.slice(0, -1)) if (s.session === last.session) assert.ok(last.index > s.index, `index ${last.index} reused (already sent ${s.index})`);
  assert.deepEqual(messages(p.b), ["m0", "m1", "m2", "after reopen"]);
  assert.deepEqual(p.b.undecryptable, []);
  return { sent, b: p.b, a2 };
}

test("after a SIGKILL (reopen from the state stored when encrypt returned), no Megolm index is used again", async () => {
  const { sent, b, a2 } = await reopenAfterThree("t4", true);
  // Encrypts of the steady state are not all written: the reopened device starts a new Megolm session instead.
  assert.notEqual(sent[3]!.session, sent[0]!.session);
  await a2.stop(); await b.stop();
});

test("after a clean stop the outbound Megolm session continues at a later index", async () => {
  const { sent, b, a2 } = await reopenAfterThree("t5", false);
  assert.deepEqual(sent[3], { session: sent[0]!.session, index: 3 });
  await a2.stop(); await b.stop();
});

test("a session near its rotation is replaced in the background: the next message finds the new key already shared", async () => {
  const p = await pair("t9");
  const sent: Array<{ session: string; index: number }> = [];
  const mark = (ev: RawEvent) => sent.push({ session: String(ev.content!["session_id"]), index: megolmIndex(String(ev.content!["ciphertext"]))! });
  for (let i = 0; i <= 80; i++) mark(await say(p.a, p.room, p.ua, `m${i}`));
  assert.equal(sent.at(-1)!.index, 80);
  assert.ok(sent.every((s) => s.session === sent[0]!.session), "one session up to index 80");
  // The replacement was queued behind the 81st message: once the device is idle, the new key is out.
  await (await p.a.crypto.device(p.ua)).run(async () => undefined);
  const toDevice = hs.calls.get("to_device") ?? 0;
  mark(await say(p.a, p.room, p.ua, "first of the new session"));
  assert.notEqual(sent.at(-1)!.session, sent[0]!.session, "a new session");
  assert.equal(sent.at(-1)!.index, 0);
  assert.equal(hs.calls.get("to_device") ?? 0, toDevice, "no key sharing on the message itself");
  assert.equal(messages(p.b).length, 82);
  assert.equal(messages(p.b).at(-1), "first of the new session");
  assert.deepEqual(p.b.undecryptable, []);
  await p.a.stop(); await p.b.stop();
});

test("devices beyond maxLoadedDevices, and idle ones, are closed and reopened from the store when needed", async () => {
  const a = await fakeBridge(hs, "t6a_", new MapCryptoStore(), { crypto: { maxLoadedDevices: 2, deviceIdleMs: 300 } });
  const b = await fakeBridge(hs, "t6b_", new MapCryptoStore());
  const ghosts = [1, 2, 3].map((i) => `@t6a_ghost${i}:${D}`);
  const ub = `@t6b_user:${D}`;
  await b.crypto.device(ub);
  const rooms: string[] = [];
  for (const g of ghosts) {
    await a.crypto.device(g);
    rooms.push(hs.createRoom([g, ub]));
  }
  await hs.settle();
  assert.ok(a.crypto.loadedDevices <= 2, `${a.crypto.loadedDevices} devices open`);
  // Each ghost in turn, both ways, twice: every turn needs a device that the last ones pushed out.
  for (let round = 0; round < 2; round++) {
    for (const [i, g] of ghosts.entries()) {
      await say(a, rooms[i]!, g, `from ${i} r${round}`);
      await say(b, rooms[i]!, ub, `to ${i} r${round}`);
      assert.ok(a.crypto.loadedDevices <= 2, `${a.crypto.loadedDevices} devices open`);
    }
  }
  assert.deepEqual(messages(a).sort(), ghosts.flatMap((_, i) => [`to ${i} r0`, `to ${i} r1`]).sort());
  assert.deepEqual(messages(b).sort(), ghosts.flatMap((_, i) => [`from ${i} r0`, `from ${i} r1`]).sort());
  // Idle: all but the bot's close; the next message still reaches its ghost.
  await new Promise((r) => setTimeout(r, 900));
  assert.equal(a.crypto.loadedDevices, 1);
  // A closed device's in-memory databases are gone too (they are what costs memory).
  const idb = (globalThis as unknown as { indexedDB: { databases(): Promise<Array<{ name?: string }>> } }).indexedDB;
  const open = (await idb.databases()).map((d) => d.name ?? "").filter((n) => n.includes("@t6a_ghost"));
  assert.deepEqual(open, []);
  await say(b, rooms[0]!, ub, "after idle");
  assert.ok(messages(a).includes("after idle"));
  assert.deepEqual([...a.undecryptable, ...b.undecryptable], []);
  await a.stop(); await b.stop();
});

test("a device-list change reaches the device that follows that user: a new device of the other side reads the next message", async () => {
  const p = await pair("t7");
  await say(p.a, p.room, p.ua, "to the first device");
  assert.deepEqual(messages(p.b), ["to the first device"]);
  // The other side's user gets a new device (its state is gone); the old device stays on the homeserver.
  await p.b.stop();
  const b2 = await fakeBridge(hs, "t7b_", new MapCryptoStore());
  await b2.crypto.device(p.ub);
  await b2.crypto.noteMembership(p.room, p.ub, true); // its store is new: it learns the room as the adapter would
  await hs.settle();
  assert.equal(hs.devices.get(p.ub)?.size, 2);
  await say(p.a, p.room, p.ua, "to the new device");
  assert.deepEqual(messages(b2), ["to the new device"]);
  assert.deepEqual(b2.undecryptable, []);
  await p.a.stop(); await b2.stop();
});
