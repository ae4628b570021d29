// Long-term DSA key generation off the event loop. DSA-1024 parameter generation takes from a tenth of a second
// to several seconds; on the main thread it would stall every user's traffic meanwhile. The worker is an inline
// script that needs only node:crypto, so it starts the same way under tsx and from dist/ (no loader, no path to
// a compiled file), and hands back the PKCS#8 DER that the OTR library's own parser reads here.
// Workers are kept and reused, at most KEYGEN_WORKERS of them, with the requests beyond in a FIFO: a worker per key
// (as before) costs a V8 isolate each, and when thousands of users start OTR at once, e.g. at a bridge's first
// start, the isolates alive together grew the process by ~7 MB each that the allocator never gave back (16
// concurrent keygens: +115 MB RSS, measured in docs/performance.md), for no throughput: keygen is CPU-bound, so
// more workers than cores only share the same cores.
// A worker idle for KEYGEN_IDLE_MS ends: after the first DMs keygen is rare (once per user and network), and two
// idle isolates held ~10 MB the process got back only by ending them; a later key pays a worker start (~30 ms).
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { parsePkcs8Dsa } from "../../otr/crypto/der.js";
import { modPowSecret } from "../../otr/crypto/modexp.js";
import type { DsaPrivateKey } from "../../otr/index.js";

/** Produces a fresh long-term key without blocking the caller's event loop. */
export type KeyGenerator = () => Promise<DsaPrivateKey>;

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { generateKeyPairSync } = require("node:crypto");
parentPort.on("message", () => {
  const { privateKey } = generateKeyPairSync("dsa", { modulusLength: 1024, divisorLength: 160 });
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  parentPort.postMessage(new Uint8Array(der.buffer, der.byteOffset, der.byteLength));
});
`;

/** Key generation workers kept at most (one per core, at least one, at most two: keygen is rare after a start). */
export const KEYGEN_WORKERS = Math.max(1, Math.min(2, availableParallelism()));

/** How long a worker with nothing to do is kept for the next key before it ends. */
export const KEYGEN_IDLE_MS = 30_000;

/** Produces keys like a KeyGenerator; says how many workers are alive (for tests and probes). */
export type KeygenPool = KeyGenerator & { liveWorkers(): number };

export class KeygenError extends Error {
  constructor(readonly code: "keygen-failed", message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KeygenError";
  }
}

type Job = { resolve: (k: DsaPrivateKey) => void; reject: (e: Error) => void };

/** A worker that answers one key per message; replaced when it fails (the job it held fails with it). */
class KeygenWorker {
  private readonly worker: Worker;
  private idleTimer: NodeJS.Timeout | null = null;
  job: Job | null = null;
  dead = false;

  constructor(private readonly onIdle: (w: KeygenWorker) => void, private readonly idleMs: number) {
    // execArgv [] keeps the parent's --import hooks (tsx) out of a worker that needs none of them.
    this.worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
    // An idle worker must not keep the process alive (the CLI exits when its work is done).
    this.worker.unref();
    this.worker.on("message", (der: Uint8Array) => {
      const job = this.job;
      this.job = null;
      if (job) {
        try {
          const k = parsePkcs8Dsa(der);
          job.resolve({ p: k.p, q: k.q, g: k.g, x: k.x, y: modPowSecret(k.g, k.x, k.p) });
        } catch (err) {
          job.reject(new KeygenError("keygen-failed", "the key worker returned an unreadable key", { cause: err }));
        }
      }
      this.worker.unref();
      this.onIdle(this);
      // onIdle may have handed it the next job already.
      if (!this.job && !this.dead) {
        this.idleTimer = setTimeout(() => this.die(null), this.idleMs);
        this.idleTimer.unref();
      }
    });
    this.worker.once("error", (err) => this.die("the key worker failed", err));
    this.worker.once("exit", (code) => this.die(`the key worker exited (code ${code}) without a key`));
  }

  run(job: Job): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.job = job;
    // Busy: keep the process alive until the key is back.
    this.worker.ref();
    this.worker.postMessage(null);
  }

  /** message null: retired for idleness, not failed. */
  private die(message: string | null, cause?: unknown): void {
    if (this.dead) return;
    this.dead = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const job = this.job;
    this.job = null;
    if (job) job.reject(new KeygenError("keygen-failed", message ?? "the key worker ended", { cause }));
    void this.worker.terminate();
    this.onIdle(this);
  }
}

/** A generator backed by at most `size` reused workers, requests beyond them served in arrival order. */
export function keygenPool(size = KEYGEN_WORKERS, idleMs = KEYGEN_IDLE_MS): KeygenPool {
  const idle: KeygenWorker[] = [];
  const queue: Job[] = [];
  let live = 0;
  const onIdle = (w: KeygenWorker) => {
    if (w.dead) {
      live--;
      const i = idle.indexOf(w);
      if (i >= 0) idle.splice(i, 1);
    } else {
      idle.push(w);
    }
    pump();
  };
  const pump = () => {
    while (queue.length) {
      let w = idle.pop();
      if (!w && live < size) {
        live++;
        w = new KeygenWorker(onIdle, idleMs);
      }
      if (!w) return;
      w.run(queue.shift()!);
    }
  };
  const generate = () => new Promise<DsaPrivateKey>((resolve, reject) => {
    queue.push({ resolve, reject });
    pump();
  });
  return Object.assign(generate, { liveWorkers: () => live });
}

/** The process-wide pool the bridge uses. */
export const generateKeyInWorker: KeygenPool = keygenPool();
