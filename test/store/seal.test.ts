// Unit tests of the AEAD layer alone: round trip, and every way a sealed value can be wrong is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Sealer, SEAL_VERSION } from "../../src/store/seal.js";

const key = new Uint8Array(randomBytes(32));
const sealer = new Sealer(key);
const plain = new TextEncoder().encode("-----private key bytes-----");

function corrupt(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => (e as { code?: string }).code === "sealed-data-corrupt");
}

test("a sealed value opens under the same key, kind and row", () => {
  const s = sealer.seal("otr-private-key", ["@a:x", "net"], plain);
  assert.equal(s[0], SEAL_VERSION);
  assert.deepEqual(sealer.open("otr-private-key", ["@a:x", "net"], s), plain);
  assert.equal(sealer.openString("irc-password", ["@a:x", "net"], sealer.sealString("irc-password", ["@a:x", "net"], "pw ✓")), "pw ✓");
});

test("sealing the same plaintext twice gives different ciphertexts (random nonces)", () => {
  const a = sealer.seal("otr-private-key", ["@a:x", "net"], plain);
  const b = sealer.seal("otr-private-key", ["@a:x", "net"], plain);
  assert.notDeepEqual(a, b);
  assert.equal(Buffer.from(a).indexOf(Buffer.from(plain)), -1, "no plaintext in the sealed value");
});

test("every flipped byte, a truncation, another row, another kind, another key or version is refused", () => {
  const s = sealer.seal("otr-private-key", ["@a:x", "net"], plain);
  for (let i = 0; i < s.length; i++) {
    const t = s.slice();
    t[i]! ^= 0x01;
    corrupt(() => sealer.open("otr-private-key", ["@a:x", "net"], t));
  }
  corrupt(() => sealer.open("otr-private-key", ["@a:x", "net"], s.subarray(0, s.length - 1)));
  corrupt(() => sealer.open("otr-private-key", ["@a:x", "net"], s.subarray(0, 10)));
  corrupt(() => sealer.open("otr-private-key", ["@b:x", "net"], s));
  corrupt(() => sealer.open("otr-private-key", ["@a:x", "other"], s));
  // ["@a:x\0net"] would alias ["@a:x", "net"] without the NUL ban in validate.checkId; the store never builds it.
  corrupt(() => sealer.open("irc-password", ["@a:x", "net"], s));
  corrupt(() => new Sealer(new Uint8Array(randomBytes(32))).open("otr-private-key", ["@a:x", "net"], s));
  const v2 = s.slice();
  v2[0] = SEAL_VERSION + 1;
  corrupt(() => sealer.open("otr-private-key", ["@a:x", "net"], v2));
});

test("a master key that is not 32 bytes is refused", () => {
  assert.throws(() => new Sealer(new Uint8Array(31)), (e: unknown) => (e as { code?: string }).code === "master-key-malformed");
});
