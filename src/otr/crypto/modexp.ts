// Modular exponentiation for OTR: secret exponents through OpenSSL (constant-time, and ~6x faster than BigInt
// here): a node:crypto Diffie-Hellman object for the moduli kept for good (the DH group), else a one-off key
// agreement (dh-derive.ts); public ones through OpenSSL when the modulus is cached or learned, else BigInt. Used by
// the DH group (spec "Diffie-Hellman"), DSA and SMP.
//
// Behaviour contract (callers should still validate ranges first; these never throw on peer-chosen values):
// - base is reduced mod `mod` first; exp must be >= 0 (a negative exponent is caller misuse and throws).
// - OpenSSL refuses bases 0, 1 and mod-1 ("key too small/large"); those have trivial results and are answered
//   directly: 0^e = 0 (e>0), 1^e = 1, (m-1)^e = 1 or m-1 by the parity of e. exp = 0 gives 1.
// - Moduli OpenSSL cannot serve (even, or under 512 bits: it silently returns zeros for a 160-bit modulus) go
//   through BigInt, which is not constant-time; OTR never uses a secret exponent with such a modulus except
//   the DSA nonce inverse, which dsa.ts blinds.
import { createDiffieHellman, type DiffieHellman } from "node:crypto";
import { bigIntToBytes, bitLength, bytesToBigInt } from "./bigint.js";
import { modPowByDerive } from "./dh-derive.js";

const MIN_OPENSSL_MODULUS_BITS = 512;
// Building a DH object runs DH_check (primality tests, ~18 ms of CPU for 1024 bits, blocking), so objects are
// cached per modulus. Registered moduli (the DH group) stay for good; others live in a small LRU so peer-chosen
// moduli (their DSA p) cannot grow memory. Public math with a modulus not cached yet uses BigInt until the modulus
// has been seen LEARN_AFTER times, then it is learned: a peer we keep verifying is worth one DH_check. Secret math
// never builds one: each user's own DSA p signs once per AKE, and a bridge of thousands of users paid a DH_check
// and a pinned object per user for it (bench:bridge, U=300: 23 s of the event loop in DH_check).
const MAX_LEARNED_MODULI = 16;
const LEARN_AFTER = 4;
const MAX_SEEN_COUNTS = 256;
const pinned = new Map<bigint, DiffieHellman>();
const learned = new Map<bigint, DiffieHellman>();
const seen = new Map<bigint, number>();

function usable(mod: bigint): boolean {
  return (mod & 1n) === 1n && bitLength(mod) >= MIN_OPENSSL_MODULUS_BITS;
}

function build(mod: bigint): DiffieHellman {
  return createDiffieHellman(Buffer.from(bigIntToBytes(mod)), Buffer.from([2]));
}

function dhFor(mod: bigint, create: boolean): DiffieHellman | null {
  const p = pinned.get(mod);
  if (p) return p;
  const hit = learned.get(mod);
  if (hit) {
    learned.delete(mod); // re-insert: Map order is the LRU order
    learned.set(mod, hit);
    return hit;
  }
  if (!create || !usable(mod)) return null;
  if (learned.size >= MAX_LEARNED_MODULI) {
    const oldest = learned.keys().next().value;
    if (oldest !== undefined) learned.delete(oldest);
  }
  const dh = build(mod);
  learned.set(mod, dh);
  return dh;
}

/** Public math: use OpenSSL once the modulus is cached or has been seen often enough to be worth caching. */
function dhForPublic(mod: bigint): DiffieHellman | null {
  const dh = dhFor(mod, false);
  if (dh || !usable(mod)) return dh;
  if (seen.size >= MAX_SEEN_COUNTS && !seen.has(mod)) seen.clear();
  const n = (seen.get(mod) ?? 0) + 1;
  seen.set(mod, n);
  if (n < LEARN_AFTER) return null;
  seen.delete(mod);
  return dhFor(mod, true);
}

/** Square-and-multiply in BigInt. Not constant-time: public values only. */
export function modPowBigInt(base: bigint, exp: bigint, mod: bigint): bigint {
  if (mod <= 0n) throw new RangeError("modPow: modulus must be positive");
  if (exp < 0n) throw new RangeError("modPow: negative exponent");
  if (mod === 1n) return 0n;
  let b = ((base % mod) + mod) % mod;
  let e = exp;
  let r = 1n;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % mod;
    e >>= 1n;
    if (e > 0n) b = (b * b) % mod;
  }
  return r;
}

function trivial(b: bigint, exp: bigint, mod: bigint): bigint | null {
  if (exp === 0n) return mod === 1n ? 0n : 1n;
  if (b === 0n) return 0n;
  if (b === 1n) return 1n;
  if (b === mod - 1n) return (exp & 1n) === 0n ? 1n : mod - 1n;
  return null;
}

function viaOpenSsl(dh: DiffieHellman, b: bigint, exp: bigint, mod: bigint): bigint {
  try {
    dh.setPrivateKey(Buffer.from(bigIntToBytes(exp)));
    return bytesToBigInt(dh.computeSecret(Buffer.from(bigIntToBytes(b))));
  } catch {
    // Should be unreachable after trivial(): keep the never-throw promise with the slow path.
    return modPowBigInt(b, exp, mod);
  }
}

/** base^exp mod mod with a secret exponent (OpenSSL, constant-time for moduli of >= 512 odd bits). */
export function modPowSecret(base: bigint, exp: bigint, mod: bigint): bigint {
  if (mod <= 0n) throw new RangeError("modPow: modulus must be positive");
  if (exp < 0n) throw new RangeError("modPow: negative exponent");
  const b = ((base % mod) + mod) % mod;
  const t = trivial(b, exp, mod);
  if (t !== null) return t;
  const dh = dhFor(mod, false);
  if (dh) return viaOpenSsl(dh, b, exp, mod);
  if (!usable(mod)) return modPowBigInt(b, exp, mod);
  try {
    return modPowByDerive(b, exp, mod);
  } catch {
    // Should be unreachable after trivial() and usable(): keep the never-throw promise with the slow path.
    return modPowBigInt(b, exp, mod);
  }
}

/**
 * base^exp mod mod with public inputs. Uses OpenSSL only when the modulus is already cached (the DH group,
 * our own DSA p), because building an object for a peer's modulus costs more than the BigInt exponentiation.
 */
export function modPowPublic(base: bigint, exp: bigint, mod: bigint): bigint {
  if (mod <= 0n) throw new RangeError("modPow: modulus must be positive");
  if (exp < 0n) throw new RangeError("modPow: negative exponent");
  const b = ((base % mod) + mod) % mod;
  const t = trivial(b, exp, mod);
  if (t !== null) return t;
  const dh = dhForPublic(mod);
  return dh ? viaOpenSsl(dh, b, exp, mod) : modPowBigInt(b, exp, mod);
}

/**
 * a^x * b^y mod m with public inputs (DSA verification). OpenSSL when the modulus is cached or learned,
 * otherwise Shamir's simultaneous exponentiation in BigInt (one squaring chain for both exponents).
 */
export function modPowDoublePublic(a: bigint, x: bigint, b: bigint, y: bigint, mod: bigint): bigint {
  if (mod <= 0n) throw new RangeError("modPow: modulus must be positive");
  if (x < 0n || y < 0n) throw new RangeError("modPow: negative exponent");
  if (mod === 1n) return 0n;
  const dh = dhForPublic(mod);
  if (dh) return (modPowPublic(a, x, mod) * modPowPublic(b, y, mod)) % mod;
  const am = ((a % mod) + mod) % mod;
  const bm = ((b % mod) + mod) % mod;
  const ab = (am * bm) % mod;
  let r = 1n;
  for (let i = Math.max(bitLength(x), bitLength(y)) - 1; i >= 0; i--) {
    r = (r * r) % mod;
    const bit = BigInt(i);
    const xa = (x >> bit) & 1n;
    const yb = (y >> bit) & 1n;
    if (xa && yb) r = (r * ab) % mod;
    else if (xa) r = (r * am) % mod;
    else if (yb) r = (r * bm) % mod;
  }
  return r;
}

/**
 * Keep an OpenSSL object for this modulus for good (the DH group), so calls never pay
 * DH_check again and a crowd of peer moduli cannot evict it. Unusable moduli (even, < 512 bits) are ignored.
 */
export function registerModulus(mod: bigint): void {
  if (pinned.has(mod) || !usable(mod)) return;
  const dh = learned.get(mod) ?? build(mod);
  learned.delete(mod);
  pinned.set(mod, dh);
}

/** How many OpenSSL DH objects are kept (pinned and learned): what the memory bound above is about. */
export function cachedModulusCount(): number {
  return pinned.size + learned.size;
}

/** a^-1 mod m by the extended Euclidean algorithm (not constant-time). Throws if no inverse exists. */
export function modInverse(a: bigint, m: bigint): bigint {
  if (m <= 0n) throw new RangeError("modInverse: modulus must be positive");
  let r0 = ((a % m) + m) % m;
  let r1 = m;
  let s0 = 1n;
  let s1 = 0n;
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new RangeError("modInverse: not invertible");
  return ((s0 % m) + m) % m;
}
