// libotr accepts our DSA signatures: engineer A's dsaSign (value taken mod q, per the spec errata) checked by
// libotr's own otrl_privkey_verify, for values above q, with leading zeros, and random ones, on keys we made
// and keys libotr made. (The converse, our verifier on libotr's signatures, is in test/otr/vectors.test.ts.)
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { bytesToBigInt } from "../../src/otr/crypto/bigint.js";
import { defaultEnv } from "../../src/otr/index.js";
import { dsaPublicKey, dsaSign, encodeDsaSignature, generateDsaKey, type DsaPrivateKey } from "../../src/otr/crypto/dsa.js";
import { LibotrPeer, ensureHelperBuilt } from "../harness/libotr.js";

let lib: LibotrPeer;
before(async () => { ensureHelperBuilt(); lib = await LibotrPeer.start(); });
after(async () => { await lib.close(); });

function vectorKeys(): DsaPrivateKey[] {
  const v = JSON.parse(readFileSync(new URL("../vectors/libotr-dsa.json", import.meta.url), "utf8")) as
    { keys: Record<"p" | "q" | "g" | "y" | "x", string>[] };
  const n = (h: string) => bytesToBigInt(new Uint8Array(Buffer.from(h, "hex")));
  return v.keys.map((k) => ({ p: n(k.p), q: n(k.q), g: n(k.g), y: n(k.y), x: n(k.x) }));
}

const values = (): [string, Uint8Array][] => [
  ["all 0xff (far above q)", new Uint8Array(32).fill(0xff)],
  ["all zero", new Uint8Array(32)],
  ["leading zero bytes", Uint8Array.from([0, 0, 0, ...randomBytes(29)])],
  ...Array.from({ length: 5 }, (_, i): [string, Uint8Array] => [`random ${i}`, new Uint8Array(randomBytes(32))]),
];

describe("libotr verifies our DSA signatures", { timeout: 300_000 }, () => {
  const keys: [string, DsaPrivateKey][] = [
    ["our key 1", generateDsaKey()], ["our key 2", generateDsaKey()],
    ...vectorKeys().map((k, i): [string, DsaPrivateKey] => [`libotr key ${i}`, k]),
  ];
  for (const [name, key] of keys) {
    test(`${name}: every signature verifies in libotr; an altered one does not`, async () => {
      for (const [label, data] of values()) {
        const sig = encodeDsaSignature(dsaSign(key, data, defaultEnv));
        assert.equal(sig.length, 40);
        assert.equal(await lib.verify(dsaPublicKey(key), data, sig), true, `${label}`);
        const bad = sig.slice();
        bad[39] = bad[39]! ^ 1;
        assert.equal(await lib.verify(dsaPublicKey(key), data, bad), false, `${label}, altered`);
      }
    });
  }
});
