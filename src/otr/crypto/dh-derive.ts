// base^exp mod p with a secret exponent through an OpenSSL DH key agreement on throwaway key objects: the private
// key is exp, the peer's public key is base, the shared secret is the power. Unlike a node:crypto DiffieHellman
// object, importing a key runs no DH_check (Miller-Rabin on p, 20-60 ms of blocked event loop for a 1024-bit
// DSA p), so a modulus seen once (each user's own DSA p) costs ~0.5 ms per call instead of one DH_check each and
// an object kept for good. OpenSSL treats the private exponent in constant time (BN_FLG_CONSTTIME).
import { createPrivateKey, createPublicKey, diffieHellman } from "node:crypto";
import { bigIntToBytes, bytesToBigInt } from "./bigint.js";

// PKCS #3 dhKeyAgreement, 1.2.840.113549.1.3.1: parameters are just (p, g); no q, so no subgroup check on base.
const DH_KEY_AGREEMENT_OID = Uint8Array.of(0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x03, 0x01);

function tlv(tag: number, body: Uint8Array): Uint8Array {
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  const out = new Uint8Array(1 + len.length + n);
  out[0] = tag;
  out.set(len, 1);
  out.set(body, 1 + len.length);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function integer(n: bigint): Uint8Array {
  const b = bigIntToBytes(n);
  return tlv(0x02, b.length === 0 || (b[0]! & 0x80) !== 0 ? concat(Uint8Array.of(0), b) : b);
}

/**
 * Callers guarantee what OpenSSL needs: mod odd and of 512 bits or more, 1 < base < mod - 1, exp >= 1. Throws
 * (an OpenSSL error) otherwise; modexp.ts falls back to BigInt so its callers keep the never-throw promise.
 */
export function modPowByDerive(base: bigint, exp: bigint, mod: bigint): bigint {
  const algorithm = tlv(0x30, concat(DH_KEY_AGREEMENT_OID, tlv(0x30, concat(integer(mod), integer(2n)))));
  const privateKey = createPrivateKey({
    key: Buffer.from(tlv(0x30, concat(integer(0n), algorithm, tlv(0x04, integer(exp))))),
    format: "der",
    type: "pkcs8",
  });
  const publicKey = createPublicKey({
    key: Buffer.from(tlv(0x30, concat(algorithm, tlv(0x03, concat(Uint8Array.of(0), integer(base)))))),
    format: "der",
    type: "spki",
  });
  return bytesToBigInt(diffieHellman({ privateKey, publicKey }));
}
