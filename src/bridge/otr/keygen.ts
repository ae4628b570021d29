// Long-term DSA key generation off the event loop. DSA-1024 parameter generation takes from a tenth of a second
// to several seconds; on the main thread it would stall every user's traffic meanwhile. The worker is an inline
// script that needs only node:crypto, so it starts the same way under tsx and from dist/ (no loader, no path to
// a compiled file), and hands back the PKCS#8 DER that the OTR library's own parser reads here.
import { Worker } from "node:worker_threads";
import { parsePkcs8Dsa } from "../../otr/crypto/der.js";
import { modPowSecret } from "../../otr/crypto/modexp.js";
import type { DsaPrivateKey } from "../../otr/index.js";

/** Produces a fresh long-term key without blocking the caller's event loop. */
export type KeyGenerator = () => Promise<DsaPrivateKey>;

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { generateKeyPairSync } = require("node:crypto");
const { privateKey } = generateKeyPairSync("dsa", { modulusLength: 1024, divisorLength: 160 });
const der = privateKey.export({ format: "der", type: "pkcs8" });
parentPort.postMessage(new Uint8Array(der.buffer, der.byteOffset, der.byteLength));
`;

export class KeygenError extends Error {
  constructor(readonly code: "keygen-failed", message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KeygenError";
  }
}

export const generateKeyInWorker: KeyGenerator = () =>
  new Promise<DsaPrivateKey>((resolve, reject) => {
    // execArgv [] keeps the parent's --import hooks (tsx) out of a worker that needs none of them.
    const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
    let settled = false;
    const fail = (message: string, cause?: unknown) => {
      if (settled) return;
      settled = true;
      reject(new KeygenError("keygen-failed", message, { cause }));
    };
    worker.once("message", (der: Uint8Array) => {
      try {
        const k = parsePkcs8Dsa(der);
        settled = true;
        resolve({ p: k.p, q: k.q, g: k.g, x: k.x, y: modPowSecret(k.g, k.x, k.p) });
      } catch (err) {
        fail("the key worker returned an unreadable key", err);
      }
      void worker.terminate();
    });
    worker.once("error", (err) => fail("the key worker failed", err));
    worker.once("exit", (code) => fail(`the key worker exited (code ${code}) without a key`));
  });
