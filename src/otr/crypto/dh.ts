// The OTR Diffie-Hellman group: RFC 3526 1536-bit MODP group, generator 2 (OTR spec v3, "Diffie-Hellman"
// under "Authenticated Key Exchange"). Private exponents are 320 random bits, as libotr draws them.
import { bytesToBigInt } from "./bigint.js";
import { modPowSecret, registerModulus } from "./modexp.js";

/** Anything that can give random bytes; src/otr/env.ts supplies the real one. */
export interface RandomSource {
  random(n: number): Uint8Array;
}

export const DH_P = BigInt(
  "0x" +
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A4" +
    "31B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C" +
    "4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED5290" +
    "77096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
);
export const DH_G = 2n;
/** (p-1)/2: the prime order of the quadratic-residue subgroup; SMP exponents live mod this. */
export const DH_Q = (DH_P - 1n) / 2n;
/** Byte length of DH_P (192). */
export const DH_P_BYTES = 192;
/** Private exponent size in bytes (320 bits). */
export const DH_PRIVATE_BYTES = 40;

registerModulus(DH_P);

export interface DhKeyPair {
  x: bigint;
  gx: bigint;
}

/** A fresh key pair: x = 320 random bits from env (redrawn in the negligible case x < 2), gx = g^x mod p. */
export function generateDhKeyPair(env: RandomSource): DhKeyPair {
  for (;;) {
    const x = bytesToBigInt(env.random(DH_PRIVATE_BYTES));
    if (x < 2n) continue;
    return { x, gx: modPowSecret(DH_G, x, DH_P) };
  }
}

/** s = gy^x mod p. Callers must have checked isValidDhPublic(gy) (the spec requires it; see that function). */
export function dhSharedSecret(x: bigint, gy: bigint): bigint {
  return modPowSecret(gy, x, DH_P);
}

/**
 * 2 <= gy <= p-2, the range check the spec demands for g^x/g^y in the AKE. Apply it to the next key carried by
 * data messages too: libotr does not, and 1 or p-1 there would force a known shared secret.
 */
export function isValidDhPublic(gy: bigint): boolean {
  return gy >= 2n && gy <= DH_P - 2n;
}
