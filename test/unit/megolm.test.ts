// The Megolm replay guard: a (session, index) seen in one event is refused in any other, also after a restart
// (a new guard over the same store) and after the session was forgotten from memory.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { megolmIndex, ReplayGuard, type ReplayKv } from "../../src/matrix/crypto/megolm.js";

function memoryKv(): ReplayKv & { data: Map<string, string>; writes: number } {
  const data = new Map<string, string>();
  const kv = {
    data, writes: 0,
    getState: async (k: string) => data.get(k) ?? null,
    putState: async (k: string, v: string) => { kv.writes++; data.set(k, v); },
  };
  return kv;
}

/** A Megolm message header as vodozemac writes it: version 3, then field 1 = varint index. */
function ciphertext(index: number): string {
  const varint: number[] = [];
  let v = index;
  do { varint.push((v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>>= 7; } while (v > 0);
  return Buffer.from([0x03, 0x08, ...varint, 0x12, 0x04, 1, 2, 3, 4]).toString("base64");
}

describe("megolmIndex", () => {
  it("reads the ratchet index, one- and multi-byte", () => {
    for (const i of [0, 1, 127, 128, 300, 2 ** 20 + 5]) assert.equal(megolmIndex(ciphertext(i)), i);
  });
  it("refuses what is not a Megolm message", () => {
    for (const bad of ["", "AA", Buffer.from([0x04, 0x08, 1]).toString("base64"), Buffer.from([0x03, 0x10, 1]).toString("base64"),
      Buffer.from([0x03, 0x08, 0x80]).toString("base64")]) assert.equal(megolmIndex(bad), null, bad);
  });
});

describe("ReplayGuard", () => {
  it("the same event again is not a replay; another event with the same session and index is", async () => {
    const g = new ReplayGuard(memoryKv());
    assert.equal(await g.isReplay("s1", 0, "$a"), false);
    assert.equal(await g.isReplay("s1", 0, "$a"), false, "a transaction delivered twice");
    assert.equal(await g.isReplay("s1", 0, "$b"), true);
    assert.equal(await g.isReplay("s1", 1, "$b"), false);
    assert.equal(await g.isReplay("s2", 0, "$c"), false, "another session");
  });

  it("is durable: a guard over the same store after a restart still refuses the replay", async () => {
    const kv = memoryKv();
    const before = new ReplayGuard(kv);
    assert.equal(await before.isReplay("s1", 7, "$orig"), false);
    assert.equal(await before.isReplay("s1", 8, "$next"), false);
    assert.equal(kv.writes, 0, "written in a batch, not per message");
    await before.flush();
    assert.equal(kv.writes, 1, "one write for the session's new records");
    const after = new ReplayGuard(kv);
    assert.equal(await after.isReplay("s1", 7, "$replayed"), true);
    assert.equal(await after.isReplay("s1", 7, "$orig"), false);
    assert.ok(![...kv.data.values()].some((v) => v.includes("$orig")), "event ids are kept only as short hashes");
  });

  it("writes by itself shortly after, without a flush", async () => {
    const kv = memoryKv();
    const g = new ReplayGuard(kv, 10, 20);
    await g.isReplay("s1", 0, "$1");
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(kv.writes, 1);
    assert.equal(await new ReplayGuard(kv).isReplay("s1", 0, "$2"), true);
  });

  it("a session forgotten from memory is read back from the store; one not yet written is kept until it is", async () => {
    const kv = memoryKv();
    const g = new ReplayGuard(kv, 2);
    await g.isReplay("s1", 0, "$1");
    await g.isReplay("s2", 0, "$2");
    await g.isReplay("s3", 0, "$3");
    assert.equal(await g.isReplay("s1", 0, "$x"), true, "unwritten, so still in memory");
    await g.flush();
    await g.isReplay("s4", 0, "$4");
    await g.isReplay("s5", 0, "$5");
    assert.equal(await g.isReplay("s1", 0, "$x"), true, "read back from the store");
  });

  it("a failed write stays pending and goes with the next flush", async () => {
    const kv = memoryKv();
    let fail = true;
    const put = kv.putState;
    kv.putState = async (k, v) => { if (fail) throw Object.assign(new Error("disk full"), { code: "database-error" }); return put(k, v); };
    const g = new ReplayGuard(kv);
    await g.isReplay("s1", 0, "$1");
    await assert.rejects(g.flush());
    fail = false;
    await g.flush();
    assert.equal(await new ReplayGuard(kv).isReplay("s1", 0, "$2"), true);
  });

  it("a damaged record weakens only its own session and never throws", async () => {
    const kv = memoryKv();
    kv.data.set("e2ee.megolm.s1", "{not json");
    const g = new ReplayGuard(kv);
    assert.equal(await g.isReplay("s1", 0, "$1"), false);
    assert.equal(await g.isReplay("s1", 0, "$2"), true);
  });
});
