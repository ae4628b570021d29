// The sans-IO boundary: randomness and time enter the OTR library only through an OtrEnv, so tests can run
// the whole protocol deterministically. This file is the only place in src/otr that touches the globals.

export interface OtrEnv {
  /** n cryptographically secure random bytes. */
  random(n: number): Uint8Array;
  /** Current time in milliseconds (heartbeats, reassembly expiry). */
  now(): number;
}

// getRandomValues refuses more than 65,536 bytes per call.
const MAX_RANDOM_CHUNK = 65536;

export const defaultEnv: OtrEnv = Object.freeze({
  random(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += MAX_RANDOM_CHUNK) {
      globalThis.crypto.getRandomValues(out.subarray(off, Math.min(n, off + MAX_RANDOM_CHUNK)));
    }
    return out;
  },
  now(): number {
    return Date.now();
  },
});
