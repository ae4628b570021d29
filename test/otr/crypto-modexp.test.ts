// Modular exponentiation and the DH group: OpenSSL path cross-checked against plain BigInt, edge bases, fallbacks.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { bigIntToBytes, bytesToBigInt, encodeMpi, bitLength } from "../../src/otr/crypto/bigint.js";
import { cachedModulusCount, modInverse, modPowBigInt, modPowDoublePublic, modPowPublic, modPowSecret, registerModulus } from "../../src/otr/crypto/modexp.js";
import { generateDsaKey } from "../../src/otr/crypto/dsa.js";
import { DH_G, DH_P, DH_Q, dhSharedSecret, generateDhKeyPair, isValidDhPublic } from "../../src/otr/crypto/dh.js";
import { seededEnv } from "./crypto-helpers.js";

const bigArb = (maxBytes: number) =>
  fc.uint8Array({ minLength: 0, maxLength: maxBytes }).map((b) => bytesToBigInt(b));

test("bytes <-> bigint round trip, minimal without length, padded with length", () => {
  fc.assert(
    fc.property(bigArb(200), (n) => {
      const b = bigIntToBytes(n);
      assert.equal(bytesToBigInt(b), n);
      if (b.length) assert.notEqual(b[0], 0, "minimal encoding has no leading zero");
      const padded = bigIntToBytes(n, b.length + 3);
      assert.equal(padded.length, b.length + 3);
      assert.equal(bytesToBigInt(padded), n);
    }),
  );
  assert.deepEqual(bigIntToBytes(0n), new Uint8Array(0));
  assert.throws(() => bigIntToBytes(256n, 1), RangeError);
  assert.throws(() => bigIntToBytes(-1n), RangeError);
  assert.deepEqual(encodeMpi(0x01ffn), new Uint8Array([0, 0, 0, 2, 1, 0xff]));
  assert.deepEqual(encodeMpi(0n), new Uint8Array([0, 0, 0, 0]));
  assert.equal(bitLength(DH_P), 1536);
});

test("modPowSecret agrees with BigInt square-and-multiply in the DH group", () => {
  fc.assert(
    fc.property(bigArb(192), bigArb(40), (base, exp) => {
      assert.equal(modPowSecret(base, exp, DH_P), modPowBigInt(base, exp, DH_P));
    }),
    { numRuns: 60 },
  );
});

test("modPowSecret handles the bases OpenSSL refuses and out-of-range bases", () => {
  const e = 0x1234567890abcdefn;
  for (const base of [0n, 1n, DH_P - 1n, DH_P, DH_P + 1n, 2n * DH_P - 1n, DH_P + 2n, -1n, -2n]) {
    assert.equal(modPowSecret(base, e, DH_P), modPowBigInt(base, e, DH_P), `base ${base}`);
    assert.equal(modPowSecret(base, e + 1n, DH_P), modPowBigInt(base, e + 1n, DH_P), `base ${base}, even exp`);
    assert.equal(modPowPublic(base, e, DH_P), modPowBigInt(base, e, DH_P), `public base ${base}`);
  }
  assert.equal(modPowSecret(5n, 0n, DH_P), 1n);
  assert.equal(modPowSecret(0n, 0n, DH_P), 1n);
  assert.equal(modPowSecret(DH_P - 1n, 3n, DH_P), DH_P - 1n);
  assert.throws(() => modPowSecret(2n, -1n, DH_P), RangeError);
});

test("results with leading zero bytes come back intact", () => {
  // 2^1528 mod p is 2^1528 itself: one leading zero byte in the 192-byte output.
  assert.equal(modPowSecret(2n, 1528n, DH_P), 1n << 1528n);
  assert.equal(modPowSecret(2n, 3n, DH_P), 8n);
});

test("small or even moduli use the BigInt path and stay correct", () => {
  const q = 0xe8d5b4e9f2b1f2c3a6b7c8d9e0f1a2b3c4d5e6f7n | 1n; // 160-bit odd modulus: OpenSSL would return zeros
  fc.assert(
    fc.property(bigArb(30), bigArb(20), (b, e) => {
      assert.equal(modPowSecret(b, e, q), modPowBigInt(b, e, q));
      assert.equal(modPowSecret(b, e, 1n << 600n), modPowBigInt(b, e, 1n << 600n));
    }),
    { numRuns: 50 },
  );
});

test("modPowSecret on a modulus never seen (a user's own DSA p) is right and keeps no OpenSSL object", () => {
  const key = generateDsaKey(seededEnv("own-dsa-p"));
  const odd = (1n << 1023n) + 1155n; // not prime: a key agreement does not care either
  const before = cachedModulusCount();
  fc.assert(
    fc.property(bigArb(128), bigArb(20), (b, e) => {
      assert.equal(modPowSecret(b, e, key.p), modPowBigInt(b, e, key.p));
      assert.equal(modPowSecret(b, e, odd), modPowBigInt(b, e, odd));
    }),
    { numRuns: 40 },
  );
  for (const base of [0n, 1n, key.p - 1n, key.p, 2n]) assert.equal(modPowSecret(base, 7n, key.p), modPowBigInt(base, 7n, key.p));
  assert.equal(modPowSecret(key.g, key.x, key.p), key.y);
  assert.equal(cachedModulusCount(), before, "no DH object (and no DH_check) per own modulus");
});

test("modPowPublic on an uncached large modulus equals BigInt", () => {
  const m = (1n << 1023n) + 1155n; // odd, not registered
  assert.equal(modPowPublic(3n, 65537n, m), modPowBigInt(3n, 65537n, m));
});

test("modPowDoublePublic (Shamir in BigInt, then OpenSSL once the modulus is learned) equals two BigInt powers", () => {
  const m = (1n << 1021n) + 2877n; // odd, unregistered: first calls take the BigInt path, later ones OpenSSL
  fc.assert(
    fc.property(bigArb(130), bigArb(21), bigArb(130), bigArb(21), (a, x, b, y) => {
      const want = (modPowBigInt(a, x, m) * modPowBigInt(b, y, m)) % m;
      assert.equal(modPowDoublePublic(a, x, b, y, m), want);
      assert.equal(modPowDoublePublic(a, x, b, y, DH_P), (modPowBigInt(a, x, DH_P) * modPowBigInt(b, y, DH_P)) % DH_P);
    }),
    { numRuns: 30 },
  );
  assert.equal(modPowDoublePublic(5n, 0n, 7n, 0n, 11n), 1n);
  assert.equal(modPowDoublePublic(5n, 3n, 7n, 2n, 1n), 0n);
  registerModulus(m); // pinning an already learned modulus keeps results identical
  assert.equal(modPowDoublePublic(3n, 5n, 2n, 7n, m), (243n * 128n) % m);
  registerModulus(1n << 600n); // even: ignored, still correct through BigInt
  assert.equal(modPowSecret(3n, 5n, 1n << 600n), 243n);
});

test("modInverse", () => {
  fc.assert(
    fc.property(bigArb(40), (a) => {
      const x = a % DH_Q;
      if (x === 0n) return;
      assert.equal((modInverse(x, DH_Q) * x) % DH_Q, 1n);
    }),
  );
  assert.throws(() => modInverse(6n, 9n), RangeError);
  assert.equal(modInverse(-1n, 7n), 6n);
});

test("DH key pairs agree and use 320-bit exponents from env", () => {
  const env = seededEnv("dh");
  const a = generateDhKeyPair(env);
  const b = generateDhKeyPair(env);
  assert.ok(bitLength(a.x) <= 320 && a.x >= 2n);
  assert.equal(a.gx, modPowBigInt(DH_G, a.x, DH_P));
  assert.ok(isValidDhPublic(a.gx) && isValidDhPublic(b.gx));
  assert.equal(dhSharedSecret(a.x, b.gx), dhSharedSecret(b.x, a.gx));
  // The same seed gives the same key: randomness only comes from env.
  assert.equal(generateDhKeyPair(seededEnv("dh")).x, a.x);
});

test("isValidDhPublic boundaries (spec: 2 <= g^x <= p-2)", () => {
  assert.equal(isValidDhPublic(0n), false);
  assert.equal(isValidDhPublic(1n), false);
  assert.equal(isValidDhPublic(2n), true);
  assert.equal(isValidDhPublic(DH_P - 2n), true);
  assert.equal(isValidDhPublic(DH_P - 1n), false);
  assert.equal(isValidDhPublic(DH_P), false);
  assert.equal(isValidDhPublic(-5n), false);
});
