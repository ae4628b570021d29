// Symmetric primitives OTR uses (spec v3: "Data Message" AES-128-CTR and HMAC-SHA1; AKE: AES-128-CTR with a
// zero counter, HMAC-SHA256 and its 160-bit truncation; fingerprints: SHA-1). All through node:crypto: measured
// here on 200-byte inputs it beats @noble/hashes|ciphers by 1.4-2.5x (sha256 690k vs 300k ops/s, sha1 490k vs
// 230k, HMAC-SHA256 210k vs 86k, AES-CTR 240k vs 170k).
import { createCipheriv, createHash, createHmac, hash, timingSafeEqual } from "node:crypto";

function u8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * AES-128 in counter mode. `ctr` is either the 8-byte top half of the counter block (OTR data messages: low 8
 * bytes start at zero) or a full 16-byte initial block. Encryption and decryption are the same operation.
 */
export function aesCtr(key16: Uint8Array, ctr: Uint8Array, data: Uint8Array): Uint8Array {
  if (key16.length !== 16) throw new RangeError("aesCtr: key must be 16 bytes");
  let iv: Uint8Array;
  if (ctr.length === 8) {
    iv = new Uint8Array(16);
    iv.set(ctr, 0);
  } else if (ctr.length === 16) {
    iv = ctr;
  } else {
    throw new RangeError("aesCtr: counter must be 8 or 16 bytes");
  }
  const c = createCipheriv("aes-128-ctr", key16, iv);
  const a = c.update(data);
  const b = c.final();
  return u8(b.length ? Buffer.concat([a, b]) : a);
}

export function sha1(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return u8(hash("sha1", parts[0]!, "buffer"));
  const h = createHash("sha1");
  for (const p of parts) h.update(p);
  return u8(h.digest());
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return u8(hash("sha256", parts[0]!, "buffer"));
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return u8(h.digest());
}

export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac("sha256", key);
  for (const p of parts) h.update(p);
  return u8(h.digest());
}

/** HMAC-SHA256 truncated to its first 160 bits: the MAC on the AKE's encrypted signature (spec "MAC_{m2}(...)"). */
export function hmacSha256_160(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  return hmacSha256(key, ...parts).subarray(0, 20);
}

export function hmacSha1(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac("sha1", key);
  for (const p of parts) h.update(p);
  return u8(h.digest());
}

/** Constant-time equality for MACs and hashes; different lengths are unequal (length is not secret). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}
