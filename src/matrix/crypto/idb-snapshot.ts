// Snapshots of IndexedDB databases as bytes, and their restore. matrix-sdk-crypto-wasm can only persist into
// IndexedDB, which Node lacks; fake-indexeddb supplies one in memory, and this module turns a device's databases
// into one blob the bridge's store seals (and back), so Olm/Megolm sessions and identity keys survive restarts.
// A snapshot is taken in one read-only transaction over every object store, so it is a consistent cut even while
// the OlmMachine keeps writing.
import { deserialize, serialize } from "node:v8";

/* Only the slice of the IndexedDB API used here (the project compiles without the DOM library). */
interface IdbRequest<T> { result: T; error: unknown; onsuccess: (() => void) | null; onerror: (() => void) | null }
interface IdbOpenRequest extends IdbRequest<IdbDatabase> { onupgradeneeded: (() => void) | null; onblocked: (() => void) | null; transaction: IdbTransaction | null }
interface IdbIndex { name: string; keyPath: string | string[]; unique: boolean; multiEntry: boolean }
interface IdbStore {
  name: string; keyPath: string | string[] | null; autoIncrement: boolean; indexNames: ArrayLike<string>;
  index(name: string): IdbIndex; getAll(): IdbRequest<unknown[]>; getAllKeys(): IdbRequest<unknown[]>;
  put(value: unknown, key?: unknown): IdbRequest<unknown>;
  createIndex(name: string, keyPath: string | string[], o: { unique: boolean; multiEntry: boolean }): IdbIndex;
}
interface IdbTransaction { objectStore(name: string): IdbStore; oncomplete: (() => void) | null; onerror: (() => void) | null; onabort: (() => void) | null; error: unknown }
interface IdbDatabase {
  name: string; version: number; objectStoreNames: ArrayLike<string>; close(): void;
  transaction(names: string[], mode: "readonly" | "readwrite"): IdbTransaction;
  createObjectStore(name: string, o: { keyPath: string | string[] | null; autoIncrement: boolean }): IdbStore;
}
export interface IdbFactory {
  open(name: string, version?: number): IdbOpenRequest;
  deleteDatabase(name: string): IdbRequest<unknown> & { onblocked: (() => void) | null };
  databases(): Promise<Array<{ name?: string; version?: number }>>;
}

interface StoreDump {
  name: string; keyPath: string | string[] | null; autoIncrement: boolean;
  indexes: Array<{ name: string; keyPath: string | string[]; unique: boolean; multiEntry: boolean }>;
  keys: unknown[]; values: unknown[];
}
interface DbDump { name: string; version: number; stores: StoreDump[] }

/** Format tag of a snapshot, so a future layout can be told apart from this one. */
const SNAPSHOT_VERSION = 1;

function done<T>(r: IdbRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function openDb(idb: IdbFactory, name: string, version?: number, upgrade?: (db: IdbDatabase) => void): Promise<IdbDatabase> {
  return new Promise((resolve, reject) => {
    const r = version === undefined ? idb.open(name) : idb.open(name, version);
    r.onupgradeneeded = () => upgrade?.(r.result);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.onblocked = () => reject(Object.assign(new Error(`IndexedDB ${name} is held open elsewhere`), { code: "crypto-store-busy" }));
  });
}

function txDone(tx: IdbTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

async function dumpDb(idb: IdbFactory, name: string): Promise<DbDump> {
  const db = await openDb(idb, name);
  try {
    const names = Array.from(db.objectStoreNames);
    const stores: StoreDump[] = [];
    if (names.length) {
      const tx = db.transaction(names, "readonly");
      const pending = names.map(async (n) => {
        const s = tx.objectStore(n);
        const indexes = Array.from(s.indexNames).map((i) => {
          const x = s.index(i);
          return { name: x.name, keyPath: x.keyPath, unique: x.unique, multiEntry: x.multiEntry };
        });
        const [keys, values] = await Promise.all([done(s.getAllKeys()), done(s.getAll())]);
        return { name: n, keyPath: s.keyPath, autoIncrement: s.autoIncrement, indexes, keys, values };
      });
      stores.push(...(await Promise.all(pending)));
      await txDone(tx);
    }
    return { name, version: db.version, stores };
  } finally {
    db.close();
  }
}

/** Every database whose name starts with `prefix`, as one blob. */
export async function snapshot(idb: IdbFactory, prefix: string): Promise<Uint8Array> {
  const names = (await idb.databases()).map((d) => d.name ?? "").filter((n) => n.startsWith(prefix)).sort();
  const dbs: DbDump[] = [];
  for (const n of names) dbs.push(await dumpDb(idb, n));
  return new Uint8Array(serialize({ v: SNAPSHOT_VERSION, dbs }));
}

async function deleteDb(idb: IdbFactory, name: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const r = idb.deleteDatabase(name);
    r.onsuccess = () => resolve();
    r.onerror = () => reject(r.error);
    r.onblocked = () => reject(Object.assign(new Error(`IndexedDB ${name} is held open elsewhere`), { code: "crypto-store-busy" }));
  });
}

/**
 * Recreates the databases of a snapshot exactly (same versions, stores, indexes and records), replacing any that
 * exist under the same names. Throws `crypto-state-unreadable` on a blob that is not a snapshot of ours.
 */
export async function restore(idb: IdbFactory, prefix: string, blob: Uint8Array): Promise<void> {
  let parsed: { v?: unknown; dbs?: unknown };
  try {
    parsed = deserialize(blob) as typeof parsed;
  } catch (err) {
    throw Object.assign(new Error("stored crypto state is not a snapshot"), { code: "crypto-state-unreadable", cause: err });
  }
  if (parsed?.v !== SNAPSHOT_VERSION || !Array.isArray(parsed.dbs)) {
    throw Object.assign(new Error(`stored crypto state has an unknown layout (${String(parsed?.v)})`), { code: "crypto-state-unreadable" });
  }
  for (const d of parsed.dbs as DbDump[]) {
    if (typeof d?.name !== "string" || !d.name.startsWith(prefix)) {
      throw Object.assign(new Error("stored crypto state belongs to another device"), { code: "crypto-state-unreadable" });
    }
  }
  for (const d of parsed.dbs as DbDump[]) {
    await deleteDb(idb, d.name);
    const db = await openDb(idb, d.name, d.version, (up) => {
      for (const s of d.stores) {
        const os = up.createObjectStore(s.name, { keyPath: s.keyPath, autoIncrement: s.autoIncrement });
        for (const i of s.indexes) os.createIndex(i.name, i.keyPath, { unique: i.unique, multiEntry: i.multiEntry });
      }
    });
    try {
      const names = d.stores.map((s) => s.name);
      if (names.length) {
        const tx = db.transaction(names, "readwrite");
        for (const s of d.stores) {
          const os = tx.objectStore(s.name);
          // In-line keys live inside the value; passing the key too would be an error.
          s.values.forEach((v, i) => (s.keyPath === null ? os.put(v, s.keys[i]) : os.put(v)));
        }
        await txDone(tx);
      }
    } finally {
      db.close();
    }
  }
}

/** Drops a device's databases (used when a device is reset or a snapshot is replaced wholesale). */
export async function drop(idb: IdbFactory, prefix: string): Promise<void> {
  for (const d of await idb.databases()) if (d.name?.startsWith(prefix)) await deleteDb(idb, d.name);
}
