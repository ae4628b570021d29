// Deterministic randomness for crypto/wire tests: SHA-256 in counter mode over a seed, so failures reproduce.
import { createHash } from "node:crypto";

export function seededEnv(seed: string | number): { random(n: number): Uint8Array; now(): number } {
  let counter = 0;
  let pool = new Uint8Array(0);
  return {
    random(n: number): Uint8Array {
      const out = new Uint8Array(n);
      let off = 0;
      while (off < n) {
        if (pool.length === 0) {
          pool = new Uint8Array(createHash("sha256").update(`${seed}/${counter++}`).digest());
        }
        const take = Math.min(pool.length, n - off);
        out.set(pool.subarray(0, take), off);
        pool = pool.subarray(take);
        off += take;
      }
      return out;
    },
    now: () => 0,
  };
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
export const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"));
