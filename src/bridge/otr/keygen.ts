// Long-term DSA key generation off the event loop. DSA-1024 parameter generation takes from a few tens of ms to
// seconds (more under load); on the main thread it would stall every user's traffic meanwhile. node:crypto's
// asynchronous generateKeyPair runs it in OpenSSL on libuv's thread pool and hands back the PKCS#8 DER that the OTR
// library's own parser reads here.
// Worker threads did this before: each is a V8 isolate, ~10 MB while alive, and after ending one the process kept
// about two thirds of what it had grown by (bench/probe-keygen.ts 32 16: +26 MiB RSS with two reused workers,
// +23 MiB still there after they ended; +2.6 MiB on the thread pool, docs/performance.md).
// At most KEYGEN_CONCURRENCY keys are made at once, the requests beyond in a FIFO: keygen is CPU-bound, so more at
// once than cores only share the same cores, and the pool's other threads stay free for the bridge's own file
// system and DNS work; FIFO lets the first users get their key first instead of all finishing together.
import { generateKeyPair } from "node:crypto";
import { availableParallelism } from "node:os";
import { parsePkcs8Dsa } from "../../otr/crypto/der.js";
import { modPowSecret } from "../../otr/crypto/modexp.js";
import type { DsaPrivateKey } from "../../otr/index.js";

/** Produces a fresh long-term key without blocking the caller's event loop. */
export type KeyGenerator = () => Promise<DsaPrivateKey>;

/** Keys made at once at most (one per core, at least one, at most two: libuv's pool has four threads). */
export const KEYGEN_CONCURRENCY = Math.max(1, Math.min(2, availableParallelism()));

export class KeygenError extends Error {
  constructor(readonly code: "keygen-failed", message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KeygenError";
  }
}

type Job = { resolve: (k: DsaPrivateKey) => void; reject: (e: Error) => void };

const DER = { publicKeyEncoding: { type: "spki", format: "der" }, privateKeyEncoding: { type: "pkcs8", format: "der" } } as const;

function makeKey(job: Job, done: () => void): void {
  generateKeyPair("dsa", { modulusLength: 1024, divisorLength: 160, ...DER }, (err, _publicDer: Buffer, privateDer: Buffer) => {
    done();
    if (err) {
      job.reject(new KeygenError("keygen-failed", "OpenSSL could not generate a DSA key", { cause: err }));
      return;
    }
    try {
      const k = parsePkcs8Dsa(new Uint8Array(privateDer.buffer, privateDer.byteOffset, privateDer.byteLength));
      job.resolve({ p: k.p, q: k.q, g: k.g, x: k.x, y: modPowSecret(k.g, k.x, k.p) });
    } catch (e) {
      job.reject(new KeygenError("keygen-failed", "OpenSSL returned an unreadable DSA key", { cause: e }));
    }
  });
}

/** A generator making at most `concurrency` keys at once, the requests beyond served in arrival order. */
export function keygenPool(concurrency = KEYGEN_CONCURRENCY): KeyGenerator {
  const queue: Job[] = [];
  let running = 0;
  const pump = () => {
    while (running < concurrency && queue.length) {
      running++;
      makeKey(queue.shift()!, () => {
        running--;
        pump();
      });
    }
  };
  return () => new Promise<DsaPrivateKey>((resolve, reject) => {
    queue.push({ resolve, reject });
    pump();
  });
}

/** The process-wide generator the bridge uses. */
export const generateKey: KeyGenerator = keygenPool();
