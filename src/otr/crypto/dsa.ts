// OTR's long-term keys: DSA (p 1024-bit, q 160-bit), signing a raw 256-bit value taken mod q (spec v3 errata;
// libotr hands the hash to libgcrypt as a plain MPI, which reduces it mod q), 40-byte r||s signatures as
// libotr writes them, the "OTR public key" serialisation (spec "Public keys, signatures, and fingerprints")
// and fingerprints (SHA-1 of that serialisation without its 2-byte type, as libotr's pubkey_data).
import { generateKeyPairSync } from "node:crypto";
import { bigIntToBytes, bitLength, bytesToBigInt, concatBytes, encodeMpi } from "./bigint.js";
import { parsePkcs8Dsa } from "./der.js";
import { modInverse, modPowDoublePublic, modPowSecret } from "./modexp.js";
import { sha1 } from "./primitives.js";
import type { RandomSource } from "./dh.js";

export interface DsaPublicKey {
  p: bigint;
  q: bigint;
  g: bigint;
  y: bigint;
}
export interface DsaPrivateKey extends DsaPublicKey {
  x: bigint;
}
export interface DsaSignature {
  r: bigint;
  s: bigint;
}

/** Public key type 0x0000 = DSA, the only one OTR defines. */
export const PUBKEY_TYPE_DSA = 0x0000;
/** Signatures are r and s, each left-padded to 20 bytes (libotr rejects any other length). */
export const DSA_SIG_BYTES = 40;
// Bounds on a peer's key so verification stays cheap; q is capped at 160 bits because r and s travel in 20 bytes.
const MAX_P_BITS = 3072;
const MAX_Q_BITS = 160;

/**
 * New DSA-1024 key. The domain parameters come from OpenSSL's generator; with `env`, x is redrawn from env
 * (the secret part then comes only from the caller's randomness) and y recomputed.
 */
export function generateDsaKey(env?: RandomSource): DsaPrivateKey {
  const { privateKey } = generateKeyPairSync("dsa", { modulusLength: 1024, divisorLength: 160 });
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  const k = parsePkcs8Dsa(new Uint8Array(der.buffer, der.byteOffset, der.byteLength));
  const x = env ? randomBelow(k.q, env) : k.x;
  return { p: k.p, q: k.q, g: k.g, x, y: modPowSecret(k.g, x, k.p) };
}

/** Uniform value in [1, n-1] by rejection sampling. */
export function randomBelow(n: bigint, env: RandomSource): bigint {
  const bits = bitLength(n);
  const bytes = Math.ceil(bits / 8);
  const mask = (1n << BigInt(bits)) - 1n;
  for (;;) {
    const v = bytesToBigInt(env.random(bytes)) & mask;
    if (v > 0n && v < n) return v;
  }
}

export function dsaPublicKey(key: DsaPrivateKey): DsaPublicKey {
  return { p: key.p, q: key.q, g: key.g, y: key.y };
}

/**
 * Sign a hash (OTR passes a 32-byte SHA-256 MAC value) as the integer hash mod q. k is uniform in [1, q-1]
 * from env; r or s of zero (probability ~2^-160) redraws k, as FIPS 186 requires.
 */
export function dsaSign(key: DsaPrivateKey, hash: Uint8Array, env: RandomSource): DsaSignature {
  const { p, q, g, x } = key;
  const h = bytesToBigInt(hash) % q;
  for (;;) {
    const k = randomBelow(q, env);
    const r = modPowSecret(g, k, p) % q;
    if (r === 0n) continue;
    // Blind the inverse: modInverse is variable-time, so invert k*b for a random b and multiply b back.
    const b = randomBelow(q, env);
    const kinv = (modInverse((k * b) % q, q) * b) % q;
    const s = (kinv * ((h + x * r) % q)) % q;
    if (s === 0n) continue;
    return { r, s };
  }
}

/** True when (r, s) is a valid signature of hash mod q. Never throws on peer-supplied keys or signatures. */
export function dsaVerify(pub: DsaPublicKey, hash: Uint8Array, sig: DsaSignature): boolean {
  const { p, q, g, y } = pub;
  const { r, s } = sig;
  if (q < 2n || p < 3n || bitLength(p) > MAX_P_BITS || bitLength(q) > MAX_Q_BITS) return false;
  if (g < 2n || g >= p || y < 2n || y >= p) return false;
  if (r <= 0n || r >= q || s <= 0n || s >= q) return false;
  let w: bigint;
  try {
    w = modInverse(s, q);
  } catch {
    return false; // q not prime: s may share a factor with it
  }
  const h = bytesToBigInt(hash) % q;
  const u1 = (h * w) % q;
  const u2 = (r * w) % q;
  const v = modPowDoublePublic(g, u1, y, u2, p) % q;
  return v === r;
}

/** r || s, each left-padded to 20 bytes: the SIG field as libotr writes it. */
export function encodeDsaSignature(sig: DsaSignature): Uint8Array {
  return concatBytes(bigIntToBytes(sig.r, 20), bigIntToBytes(sig.s, 20));
}

/** Inverse of encodeDsaSignature; null unless exactly 40 bytes. */
export function decodeDsaSignature(b: Uint8Array): DsaSignature | null {
  if (b.length !== DSA_SIG_BYTES) return null;
  return { r: bytesToBigInt(b.subarray(0, 20)), s: bytesToBigInt(b.subarray(20)) };
}

/** MPI(p) MPI(q) MPI(g) MPI(y): the public key body that fingerprints hash (libotr's pubkey_data). */
export function serializeDsaPublicBody(pub: DsaPublicKey): Uint8Array {
  return concatBytes(encodeMpi(pub.p), encodeMpi(pub.q), encodeMpi(pub.g), encodeMpi(pub.y));
}

/** SHORT pubkey type (0x0000) then the four MPIs: the PUBKEY field of reveal-signature/signature messages. */
export function serializeDsaPublic(pub: DsaPublicKey): Uint8Array {
  return concatBytes(new Uint8Array([0, PUBKEY_TYPE_DSA]), serializeDsaPublicBody(pub));
}

/** 20-byte SHA-1 fingerprint over the serialisation without the type. */
export function fingerprint(pub: DsaPublicKey): Uint8Array {
  return sha1(serializeDsaPublicBody(pub));
}

/** "AAAAAAAA BBBBBBBB CCCCCCCC DDDDDDDD EEEEEEEE": libotr's otrl_privkey_hash_to_human. */
export function formatFingerprint(fp: Uint8Array): string {
  const hex = Buffer.from(fp.buffer, fp.byteOffset, fp.byteLength).toString("hex").toUpperCase();
  const groups: string[] = [];
  for (let i = 0; i < hex.length; i += 8) groups.push(hex.slice(i, i + 8));
  return groups.join(" ");
}

