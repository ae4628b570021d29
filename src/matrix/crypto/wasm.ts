// Loads matrix-sdk-crypto-wasm (the OlmMachine Element Web runs; its .wasm ships inside the npm package, so
// nothing is downloaded) and gives it an IndexedDB. Loaded on first use only, so a bridge with encryption off never
// pays for the wasm module or the in-memory database.
import { trackWrites, type IdbFactory } from "./idb-snapshot.js";

export type Wasm = typeof import("@matrix-org/matrix-sdk-crypto-wasm");

let loading: Promise<{ W: Wasm; idb: IdbFactory }> | null = null;

export function loadWasm(): Promise<{ W: Wasm; idb: IdbFactory }> {
  return (loading ??= (async () => {
    // crypto-wasm looks for the global `indexedDB`; fake-indexeddb/auto installs one (memory only: see
    // idb-snapshot.ts for how it is made durable).
    await import("fake-indexeddb/auto");
    const W = await import("@matrix-org/matrix-sdk-crypto-wasm");
    await W.initAsync();
    const idb = (globalThis as unknown as { indexedDB: IdbFactory }).indexedDB;
    await trackWrites(idb); // snapshots re-read only what changed (idb-snapshot.ts)
    return { W, idb };
  })());
}
