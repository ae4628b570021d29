// KDF and symmetric primitives, each checked against a second implementation (@noble/hashes|ciphers or a
// direct node:crypto computation written from the spec's formulas), plus the leading-zero regression.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createHash } from "node:crypto";
import { sha256 as nSha256 } from "@noble/hashes/sha2.js";
import { sha1 as nSha1 } from "@noble/hashes/legacy.js";
import { hmac } from "@noble/hashes/hmac.js";
import { ctr } from "@noble/ciphers/aes.js";
import { bigIntToBytes, bytesToBigInt } from "../../src/otr/crypto/bigint.js";
import { deriveAkeKeys, deriveDataKeys, extraSymmetricKey, h1, h2 } from "../../src/otr/crypto/kdf.js";
import {
  aesCtr, constantTimeEqual, hmacSha1, hmacSha256, hmacSha256_160, sha1, sha256,
} from "../../src/otr/crypto/primitives.js";
import { hex } from "./crypto-helpers.js";

function mpi(n: bigint): Buffer {
  const mag = Buffer.from(bigIntToBytes(n));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(mag.length);
  return Buffer.concat([len, mag]);
}
const H = (alg: string, ...parts: Uint8Array[]) => {
  const h = createHash(alg);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
const secretArb = fc.uint8Array({ minLength: 1, maxLength: 192 }).map(bytesToBigInt);

test("AKE keys follow the spec's h2 table", () => {
  fc.assert(
    fc.property(secretArb, (s) => {
      const k = deriveAkeKeys(s);
      const h = (b: number) => H("sha256", Buffer.from([b]), mpi(s));
      assert.equal(hex(k.ssid), hex(h(0).subarray(0, 8)));
      assert.equal(hex(k.c), hex(h(1).subarray(0, 16)));
      assert.equal(hex(k.cPrime), hex(h(1).subarray(16)));
      assert.equal(hex(k.m1), hex(h(2)));
      assert.equal(hex(k.m2), hex(h(3)));
      assert.equal(hex(k.m1Prime), hex(h(4)));
      assert.equal(hex(k.m2Prime), hex(h(5)));
      assert.equal(hex(h2(7, s)), hex(h(7)));
      assert.equal(hex(h1(7, s)), hex(H("sha1", Buffer.from([7]), mpi(s))));
    }),
    { numRuns: 50 },
  );
});

test("data keys: send/recv bytes by comparing public keys, MAC key = SHA-1(AES key), both sides agree", () => {
  fc.assert(
    fc.property(secretArb, fc.bigInt({ min: 2n, max: 1n << 200n }), fc.bigInt({ min: 2n, max: 1n << 200n }), (s, a, b) => {
      fc.pre(a !== b);
      const ka = deriveDataKeys(a, b, s);
      const kb = deriveDataKeys(b, a, s);
      assert.deepEqual(ka.sendAes, kb.recvAes);
      assert.deepEqual(ka.recvAes, kb.sendAes);
      assert.deepEqual(ka.sendMac, kb.recvMac);
      const sendbyte = a > b ? 1 : 2;
      assert.equal(hex(ka.sendAes), hex(H("sha1", Buffer.from([sendbyte]), mpi(s)).subarray(0, 16)));
      assert.equal(hex(ka.recvAes), hex(H("sha1", Buffer.from([3 - sendbyte]), mpi(s)).subarray(0, 16)));
      assert.equal(hex(ka.sendMac), hex(H("sha1", ka.sendAes)));
      assert.equal(ka.sendAes.length, 16);
      assert.equal(ka.sendMac.length, 20);
      assert.equal(hex(ka.extraSymmetricKey), hex(H("sha256", Buffer.from([0xff]), mpi(s))));
      assert.deepEqual(extraSymmetricKey(s), ka.extraSymmetricKey);
    }),
    { numRuns: 50 },
  );
});

test("a secret whose top byte is small hashes in minimal MPI form (python-potr/otr.js leading-zero bug)", () => {
  const s = 0x00ffn << 1520n; // 191 significant bytes: the 192-byte padded form would have a leading zero
  const k = deriveAkeKeys(s);
  const secbytes = mpi(s);
  assert.equal(secbytes.readUInt32BE(0), 191);
  assert.equal(hex(k.ssid), hex(H("sha256", Buffer.from([0]), secbytes).subarray(0, 8)));
  const padded = Buffer.concat([Buffer.from([0, 0, 0, 192, 0]), Buffer.from(bigIntToBytes(s))]);
  assert.notEqual(hex(k.ssid), hex(H("sha256", Buffer.from([0]), padded).subarray(0, 8)));
});

test("hashes and HMACs agree with @noble/hashes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 80 }), (a, b, key) => {
      const ab = new Uint8Array([...a, ...b]);
      assert.deepEqual(sha1(a), nSha1(a));
      assert.deepEqual(sha1(a, b), nSha1(ab));
      assert.deepEqual(sha256(a), nSha256(a));
      assert.deepEqual(sha256(a, b), nSha256(ab));
      assert.deepEqual(hmacSha256(key, a, b), hmac(nSha256, key, ab));
      assert.deepEqual(hmacSha256_160(key, a), hmac(nSha256, key, a).subarray(0, 20));
      assert.equal(hmacSha256_160(key, a).length, 20);
      assert.deepEqual(hmacSha1(key, a, b), hmac(nSha1, key, ab));
    }),
    { numRuns: 100 },
  );
});

test("AES-128-CTR with an 8-byte counter top or a 16-byte block agrees with @noble/ciphers and inverts", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.uint8Array({ maxLength: 500 }), (key, top, data) => {
      const iv = new Uint8Array(16);
      iv.set(top);
      const enc = aesCtr(key, top, data);
      assert.deepEqual(enc, ctr(key, iv).encrypt(data));
      assert.deepEqual(aesCtr(key, iv, data), enc);
      assert.deepEqual(aesCtr(key, top, enc), data);
    }),
    { numRuns: 50 },
  );
  // The counter increments across the whole 128-bit block (low half first): compare block 2 with a manual IV.
  const key = new Uint8Array(16).fill(3);
  const top = new Uint8Array(8).fill(0xff);
  const two = aesCtr(key, top, new Uint8Array(32));
  const iv1 = new Uint8Array(16).fill(0xff, 0, 8);
  iv1[15] = 1;
  assert.deepEqual(two.subarray(16), aesCtr(key, iv1, new Uint8Array(16)));
  assert.throws(() => aesCtr(new Uint8Array(15), top, two), RangeError);
  assert.throws(() => aesCtr(key, new Uint8Array(9), two), RangeError);
});

test("constantTimeEqual", () => {
  assert.equal(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
  assert.equal(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])), false);
  assert.equal(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3])), false);
  assert.equal(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)), true);
});
