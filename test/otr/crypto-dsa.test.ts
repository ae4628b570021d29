// DSA as OTR uses it: sign/verify round trips, tampering, hash mod q, libotr's 40-byte signature layout,
// public key serialisation and fingerprints (known answer from golang.org/x/crypto/otr), and a cross-check
// against OpenSSL's own DSA (node:crypto sign/verify with a null digest, i.e. over the raw value).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from "node:crypto";
import { bigIntToBytes, bytesToBigInt } from "../../src/otr/crypto/bigint.js";
import { parsePkcs8Dsa } from "../../src/otr/crypto/der.js";
import { modPowBigInt } from "../../src/otr/crypto/modexp.js";
import {
  decodeDsaSignature, dsaPublicKey, dsaSign, dsaVerify, encodeDsaSignature, fingerprint, formatFingerprint,
  generateDsaKey, serializeDsaPublic, type DsaPrivateKey,
} from "../../src/otr/crypto/dsa.js";
import { seededEnv, hex, unhex } from "./crypto-helpers.js";

// golang.org/x/crypto otr/otr_test.go (commit 2aed6cb9): alicePrivateKeyHex = SHORT type 0, MPIs p q g y x,
// with aliceFingerprintHex its expected fingerprint.
const GO_ALICE =
  "000000000080c81c2cb2eb729b7e6fd48e975a932c638b3a9055478583afa46755683e30102447f6da2d8bec9f386bbb5da6403b0040fee8650b6ab2d7f32c55ab017ae9b6aec8c324ab5844784e9a80e194830d548fb7f09a0410df2c4d5c8bc2b3e9ad484e65412be689cf0834694e0839fb2954021521ffdffb8f5c32c14dbf2020b3ce7500000014da4591d58def96de61aea7b04a8405fe1609308d000000808ddd5cb0b9d66956e3dea5a915d9aba9d8a6e7053b74dadb2fc52f9fe4e5bcc487d2305485ed95fed026ad93f06ebb8c9e8baf693b7887132c7ffdd3b0f72f4002ff4ed56583ca7c54458f8c068ca3e8a4dfa309d1dd5d34e2a4b68e6f4338835e5e0fb4317c9e4c7e4806dafda3ef459cd563775a586dd91b1319f72621bf3f00000080b8147e74d8c45e6318c37731b8b33b984a795b3653c2cd1d65cc99efe097cb7eb2fa49569bab5aab6e8a1c261a27d0f7840a5e80b317e6683042b59b6dceca2879c6ffc877a465be690c15e4a42f9a7588e79b10faac11b1ce3741fcef7aba8ce05327a2c16d279ee1b3d77eb783fb10e3356caa25635331e26dd42b8396c4d00000001420bec691fea37ecea58a5c717142f0b804452f57";
const GO_ALICE_FP = "0bb01c360424522e94ee9c346ce877a1a4288b2f";

function parseGoKey(h: string): DsaPrivateKey {
  const b = unhex(h);
  let off = 2;
  const mpis: bigint[] = [];
  while (off < b.length) {
    const len = new DataView(b.buffer).getUint32(off);
    mpis.push(bytesToBigInt(b.subarray(off + 4, off + 4 + len)));
    off += 4 + len;
  }
  const [p, q, g, y, x] = mpis as [bigint, bigint, bigint, bigint, bigint];
  return { p, q, g, y, x };
}

const alice = parseGoKey(GO_ALICE);

test("known answer: serialisation and fingerprint of golang x/crypto/otr's test key", () => {
  assert.equal(hex(serializeDsaPublic(alice)), GO_ALICE.slice(0, GO_ALICE.lastIndexOf("00000014")));
  assert.equal(hex(fingerprint(alice)), GO_ALICE_FP);
  assert.equal(formatFingerprint(fingerprint(alice)), "0BB01C36 0424522E 94EE9C34 6CE877A1 A4288B2F");
  assert.equal(alice.y, modPowBigInt(alice.g, alice.x, alice.p), "the vector is self-consistent");
});

test("sign/verify round trip; hash taken mod q; tampering rejected", () => {
  const env = seededEnv("dsa-rt");
  for (let i = 0; i < 20; i++) {
    const h = env.random(32);
    const sig = dsaSign(alice, h, env);
    assert.ok(sig.r > 0n && sig.r < alice.q && sig.s > 0n && sig.s < alice.q);
    assert.ok(dsaVerify(alice, h, sig));
    // The signed value is h mod q: the reduced value, as bytes, verifies too.
    assert.ok(dsaVerify(alice, bigIntToBytes(bytesToBigInt(h) % alice.q, 20), sig));
    const h2 = h.slice();
    h2[i % 32]! ^= 1;
    assert.equal(dsaVerify(alice, h2, sig), false);
    assert.equal(dsaVerify(alice, h, { r: sig.r ^ 1n, s: sig.s }), false);
    assert.equal(dsaVerify(alice, h, { r: sig.r, s: sig.s ^ 1n }), false);
    assert.equal(dsaVerify({ ...alice, y: alice.y + 1n }, h, sig), false);
  }
});

test("verify rejects out-of-range r, s and degenerate keys without throwing", () => {
  const env = seededEnv("dsa-range");
  const h = env.random(32);
  const sig = dsaSign(alice, h, env);
  for (const bad of [
    { r: 0n, s: sig.s }, { r: sig.r, s: 0n }, { r: sig.r + alice.q, s: sig.s }, { r: sig.r, s: sig.s + alice.q },
    { r: -sig.r, s: sig.s },
  ]) assert.equal(dsaVerify(alice, h, bad), false);
  const pub = dsaPublicKey(alice);
  for (const k of [
    { ...pub, q: 0n }, { ...pub, q: 1n }, { ...pub, p: 0n }, { ...pub, g: 1n }, { ...pub, g: pub.p },
    { ...pub, y: 0n }, { ...pub, y: 1n }, { ...pub, q: pub.q * 4n }, { ...pub, p: 1n << 5000n },
    { ...pub, q: pub.q + 1n },
  ]) assert.equal(dsaVerify(k, h, sig), false);
});

test("40-byte r||s encoding keeps leading zeros and refuses other lengths", () => {
  const sig = { r: 5n, s: alice.q - 1n };
  const b = encodeDsaSignature(sig);
  assert.equal(b.length, 40);
  assert.equal(b[0], 0);
  assert.deepEqual(decodeDsaSignature(b), sig);
  assert.equal(decodeDsaSignature(b.subarray(1)), null);
  assert.equal(decodeDsaSignature(new Uint8Array(41)), null);
});

test("generateDsaKey: 1024/160 keys whose x comes from env", () => {
  const k = generateDsaKey(seededEnv("gen"));
  assert.equal(k.p.toString(2).length, 1024);
  assert.equal(k.q.toString(2).length, 160);
  assert.equal((k.p - 1n) % k.q, 0n);
  assert.equal(k.y, modPowBigInt(k.g, k.x, k.p));
  assert.equal(modPowBigInt(k.g, k.q, k.p), 1n);
  const env = seededEnv("gen-sign");
  const h = env.random(32);
  assert.ok(dsaVerify(dsaPublicKey(k), h, dsaSign(k, h, env)));
  const k2 = generateDsaKey();
  assert.ok(k2.x > 0n && k2.x < k2.q && k2.y === modPowBigInt(k2.g, k2.x, k2.p));
});

// DER Dss-Sig-Value helpers for the OpenSSL cross-check (test-only).
function derInt(n: bigint): Buffer {
  let b = Buffer.from(bigIntToBytes(n));
  if (b.length === 0 || b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return Buffer.concat([Buffer.from([2, b.length]), b]);
}
function derSig(r: bigint, s: bigint): Buffer {
  const body = Buffer.concat([derInt(r), derInt(s)]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}
function parseDerSig(b: Buffer): { r: bigint; s: bigint } {
  let off = 2;
  const out: bigint[] = [];
  for (let i = 0; i < 2; i++) {
    const len = b[off + 1]!;
    out.push(bytesToBigInt(b.subarray(off + 2, off + 2 + len)));
    off += 2 + len;
  }
  return { r: out[0]!, s: out[1]! };
}

test("independent check: OpenSSL verifies our signatures and we verify OpenSSL's", () => {
  // node's DSA sign/verify with a null algorithm hashes with SHA-256 and keeps the leftmost 160 bits (measured).
  // Signing those 20 bytes ourselves (as an integer mod q, like OTR's 32-byte value) must give the same math;
  // a prefix >= q (up to half the time, depending on q) also checks reduction mod q against OpenSSL's arithmetic.
  const { privateKey, publicKey } = generateKeyPairSync("dsa", { modulusLength: 1024, divisorLength: 160 });
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  const k = parsePkcs8Dsa(new Uint8Array(der));
  const key: DsaPrivateKey = { ...k, y: modPowBigInt(k.g, k.x, k.p) };
  const env = seededEnv("openssl-x");
  for (let i = 0; i < 40; i++) {
    const m = env.random(50);
    const z = new Uint8Array(createHash("sha256").update(m).digest().subarray(0, 20));
    const ours = dsaSign(key, z, env);
    assert.ok(nodeVerify(null, m, publicKey, derSig(ours.r, ours.s)), "OpenSSL accepts our signature");
    assert.equal(nodeVerify(null, m, publicKey, derSig(ours.r, (ours.s % (key.q - 1n)) + 1n)), false);
    const theirs = parseDerSig(nodeSign(null, m, privateKey));
    assert.ok(dsaVerify(key, z, theirs), "we accept OpenSSL's signature");
  }
});
