// Modular exponentiation for OTR: secret exponents through OpenSSL (node:crypto Diffie-Hellman objects, which
// are constant-time and ~6x faster than BigInt here), public ones through BigInt unless the modulus is already
// one OpenSSL knows. Used by the DH group (spec "Diffie-Hellman"), DSA and SMP.
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

const MIN_OPENSSL_MODULUS_BITS = 512;
// Building a DH object runs DH_check (primality tests, ~18 ms for 1024 bits), so objects are cached per modulus.
// The cap keeps peer-chosen moduli (their DSA p) from growing the cache: public math with an unknown modulus
// uses BigInt instead of building an object.
const MAX_CACHED_MODULI = 16;
const cache = new Map<bigint, DiffieHellman>();

function dhFor(mod: bigint, create: boolean): DiffieHellman | null {
  const hit = cache.get(mod);
  if (hit) return hit;
  if (!create || (mod & 1n) === 0n || bitLength(mod) < MIN_OPENSSL_MODULUS_BITS) return null;
  if (cache.size >= MAX_CACHED_MODULI) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  const dh = createDiffieHellman(Buffer.from(bigIntToBytes(mod)), Buffer.from([2]));
  cache.set(mod, dh);
  return dh;
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
  const dh = dhFor(mod, true);
  return dh ? viaOpenSsl(dh, b, exp, mod) : modPowBigInt(b, exp, mod);
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
  const dh = dhFor(mod, false);
  return dh ? viaOpenSsl(dh, b, exp, mod) : modPowBigInt(b, exp, mod);
}

/** Warm the OpenSSL cache for a modulus (e.g. our DSA p at account load) so later calls skip DH_check. */
export function registerModulus(mod: bigint): void {
  dhFor(mod, true);
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
