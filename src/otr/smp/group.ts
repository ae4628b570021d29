// Arithmetic of the Socialist Millionaires' Protocol (OTR v3 spec, "Socialist Millionaires' Protocol"):
// the RFC 3526 1536-bit group with g1 = 2, exponents modulo q = (p-1)/2, and the SMP hash
// SHA-256(version || MPI(a) [|| MPI(b)]).
//
// Every large exponentiation goes through OpenSSL (modPowSecret): for secret exponents because it is the
// constant-time path, and for public ones (the peer's D and c values) because it is also several times faster
// than BigInt, which is what an SMP run's speed comes down to (~60 exponentiations per run, both sides).
// Multiplications, inverses and comparisons stay in BigInt.
import { DH_P, DH_Q } from "../crypto/dh.js";
import { modPowSecret, modInverse } from "../crypto/modexp.js";
import { bytesToBigInt, encodeMpi } from "../crypto/bigint.js";
import { sha256 } from "../crypto/primitives.js";

export const P: bigint = DH_P;
export const Q: bigint = DH_Q;
export const G1 = 2n;
const P_MINUS_2 = P - 2n;

/** A proof nonce draws this many bytes: 64 bits more than q has, so the reduction mod q is unbiased to 2^-64. */
const NONCE_RANDOM_BYTES = 200;
/**
 * The DH-style exponents (a2, a3, b2, b3 and the blinding r4) are 320 bits, as OTR's AKE exponents in the
 * same group ("at least 320 bits"): recovering one takes ~2^160 work (Pollard's kangaroo), more than the
 * ~2^96 the 1536-bit group offers against NFS, so nothing is lost, and an SMP run gets ~35 % faster.
 * The proof nonces (r2, r3, r5, r6, r7) stay uniform mod q: a shorter nonce would leak the secret through
 * D = r - secret*c.
 */
const DH_EXPONENT_BYTES = 40;
/** SMP's c values are SHA-256 outputs; anything wider can never match and is refused before exponentiating. */
const HASH_BITS_LIMIT = 1n << 256n;

export interface RandomSource { random(n: number): Uint8Array }

/** A group element a peer may send: 2 <= x <= p-2 (excludes 0, 1, p-1 and anything >= p). */
export function isGroupElement(x: bigint): boolean {
  return x >= 2n && x <= P_MINUS_2;
}

/** An exponent a peer may send as a D value: 1 <= x < q. */
export function isExponent(x: bigint): boolean {
  return x >= 1n && x < Q;
}

/** A c value that could be a SHA-256 output. */
export function isHashValue(x: bigint): boolean {
  return x >= 0n && x < HASH_BITS_LIMIT;
}

/**
 * base^exp mod p through OpenSSL. Degenerate bases a cheating peer can force (Qa/Qb = 1 when Qa = Qb) are
 * answered by modPowSecret without OpenSSL, which refuses them.
 */
export function pow(base: bigint, exp: bigint): bigint {
  return modPowSecret(base, exp, P);
}

export function mulMod(a: bigint, b: bigint): bigint {
  return (a * b) % P;
}

/** a / b in the group. b is always a checked group element (non-zero), so the inverse exists. */
export function divMod(a: bigint, b: bigint): bigint {
  return (a * modInverse(b, P)) % P;
}

/** (a - b*c) mod q, the D values of the zero-knowledge proofs. */
export function proofResponse(r: bigint, secret: bigint, c: bigint): bigint {
  const d = (r - secret * c) % Q;
  return d < 0n ? d + Q : d;
}

/** A proof nonce, uniform in [1, q). */
export function randomNonce(env: RandomSource): bigint {
  for (;;) {
    const e = bytesToBigInt(env.random(NONCE_RANDOM_BYTES)) % Q;
    if (e !== 0n) return e;
  }
}

/** A DH-style secret exponent in [1, 2^320). */
export function randomDhExponent(env: RandomSource): bigint {
  for (;;) {
    const e = bytesToBigInt(env.random(DH_EXPONENT_BYTES));
    if (e !== 0n) return e;
  }
}

/** The SMP hash: SHA-256 of the version byte then one or two MPIs, read back as an integer. */
export function smpHash(version: number, a: bigint, b?: bigint): bigint {
  const ma = encodeMpi(a);
  const mb = b === undefined ? new Uint8Array(0) : encodeMpi(b);
  const input = new Uint8Array(1 + ma.length + mb.length);
  input[0] = version;
  input.set(ma, 1);
  input.set(mb, 1 + ma.length);
  return bytesToBigInt(sha256(input));
}
