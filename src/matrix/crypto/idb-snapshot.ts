// Snapshots of IndexedDB databases as bytes, and their restore. matrix-sdk-crypto-wasm can only persist into
// IndexedDB, which Node lacks; fake-indexeddb supplies one in memory, and this module turns a device's databases
// into one blob the bridge's store seals (and back), so Olm/Megolm sessions and identity keys survive restarts.
// A snapshot is taken in one read-only transaction over every object store of a database, so it is a consistent
// cut even while the OlmMachine keeps writing.
//
// Snapshots are incremental in what they read: every record write in fake-indexeddb marks its (database, object
// store) as changed (trackWrites), and a device's Snapshotter keeps each object store's last serialized dump, so a
// snapshot re-reads and re-serializes only the stores written since the last one (after a Megolm encrypt: one),
// and a device whose state did not change writes nothing at all. The blob is still whole (one sealed row per
// device in the store), so a restore needs nothing but the last blob.
import { deserialize, serialize } from "node:v8";

/* Only the slice of the IndexedDB API used here (the project compiles without the DOM library). */
interface IdbRequest<T> { result: T; error: unknown; onsuccess: (() => void) | null; onerror: (() => void) | null }
interface IdbOpenRequest extends IdbRequest<IdbDatabase> { onupgradeneeded: (() => void) | null; onblocked: (() => void) | null; transaction: IdbTransaction | null }
interface IdbIndex { name: string; keyPath: string | string[]; unique: boolean; multiEntry: boolean }
interface IdbStore {
  name: string; keyPath: string | string[] | null; autoIncrement: boolean; indexNames: ArrayLike<string>;
  index(name: string): IdbIndex; getAll(): IdbRequest<unknown[]>; count(): IdbRequest<number>; getAllKeys(): IdbRequest<unknown[]>;
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
/** Layout 1 kept whole store dumps; layout 2 keeps each store's dump serialized on its own (cached per store). */
interface DbDumpV1 { name: string; version: number; stores: StoreDump[] }
interface DbDumpV2 { name: string; version: number; stores: Uint8Array[] }

/** What a device records about its state beside the databases. */
export interface SnapshotFlags {
  /**
   * True in every snapshot written while the device was open: Megolm encrypts after it may not have been stored
   * (see device.ts), so a device reopened from it must not continue its outbound sessions. False only in the
   * snapshot written by a clean close.
   */
  outboundMayLag: boolean;
}

/** Format tag of a snapshot, so a future layout can be told apart from this one. */
const SNAPSHOT_VERSION = 2;

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

// ------------------------------------------------------------------ write tracking

/** Object stores written since their last snapshot, by database name. */
const written = new Map<string, Set<string>>();
let tracked: IdbFactory | null = null;

/**
 * Makes every record write of fake-indexeddb (put, add, delete, clear, and their rollbacks) mark its object store
 * as changed. fake-indexeddb has no hook for this: its internal object-store class (reached through a scratch
 * database, since it is not exported) is wrapped. Fails with `crypto-store-untracked` if that class has changed
 * shape, rather than snapshot without knowing what changed.
 */
export async function trackWrites(idb: IdbFactory): Promise<void> {
  if (tracked === idb) return;
  const name = "motr-write-tracking-probe";
  const db = await openDb(idb, name, 1, (up) => { up.createObjectStore("s", { keyPath: null, autoIncrement: false }); });
  const tx = db.transaction(["s"], "readonly");
  const raw = (tx.objectStore("s") as unknown as { _rawObjectStore?: object })._rawObjectStore;
  await txDone(tx);
  db.close();
  await deleteDb(idb, name);
  const proto = raw ? Object.getPrototypeOf(raw) as Record<string, unknown> : null;
  const methods = ["storeRecord", "deleteRecord", "clear"] as const;
  if (!proto || !methods.every((m) => typeof proto[m] === "function")) {
    throw Object.assign(new Error("fake-indexeddb's object stores have changed shape: crypto state writes cannot be tracked"), { code: "crypto-store-untracked" });
  }
  for (const m of methods) {
    const orig = proto[m] as (...a: unknown[]) => unknown;
    proto[m] = function (this: { name: string; rawDatabase: { name: string } }, ...a: unknown[]) {
      const db = this.rawDatabase.name;
      let set = written.get(db);
      if (!set) written.set(db, (set = new Set()));
      set.add(this.name);
      return orig.apply(this, a);
    };
  }
  tracked = idb;
}

/** Takes (and clears) the stores written in `db` since the last call. */
function takeWritten(db: string): Set<string> {
  const s = written.get(db) ?? new Set<string>();
  written.delete(db);
  return s;
}

// ------------------------------------------------------------------ snapshots

async function deleteDb(idb: IdbFactory, name: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const r = idb.deleteDatabase(name);
    r.onsuccess = () => resolve();
    r.onerror = () => reject(r.error);
    r.onblocked = () => reject(Object.assign(new Error(`IndexedDB ${name} is held open elsewhere`), { code: "crypto-store-busy" }));
  });
}

function readStore(s: IdbStore): Promise<StoreDump> {
  const indexes = Array.from(s.indexNames).map((i) => {
    const x = s.index(i);
    return { name: x.name, keyPath: x.keyPath, unique: x.unique, multiEntry: x.multiEntry };
  });
  return Promise.all([done(s.getAllKeys()), done(s.getAll())])
    .then(([keys, values]) => ({ name: s.name, keyPath: s.keyPath, autoIncrement: s.autoIncrement, indexes, keys, values }));
}

interface CachedDb { version: number; stores: Map<string, Uint8Array> }

/**
 * One device's databases (every database whose name starts with `prefix`) as blobs, reading only what changed.
 * Needs trackWrites to have run on the same factory.
 */
export class Snapshotter {
  private cache = new Map<string, CachedDb>();

  constructor(private readonly idb: IdbFactory, readonly prefix: string) {}

  /** Whether anything was written to the device's databases since the last snapshot (or restore). */
  changed(): boolean {
    if (!this.cache.size) return true;
    for (const [db, set] of written) if (db.startsWith(this.prefix) && set.size) return true;
    return false;
  }

  /** The object stores written since the last snapshot, as `database/store` (for decisions and tests). */
  changedStores(): string[] {
    const out: string[] = [];
    for (const [db, set] of written) if (db.startsWith(this.prefix)) for (const s of set) out.push(`${db.slice(this.prefix.length)}/${s}`);
    return out.sort();
  }

  async snapshot(flags: SnapshotFlags): Promise<Uint8Array> {
    if (tracked !== this.idb) throw Object.assign(new Error("snapshot without write tracking"), { code: "crypto-store-untracked" });
    const names = (await this.idb.databases()).map((d) => d.name ?? "").filter((n) => n.startsWith(this.prefix)).sort();
    for (const n of [...this.cache.keys()]) if (!names.includes(n)) this.cache.delete(n);
    const dbs: DbDumpV2[] = [];
    for (const n of names) dbs.push(await this.dumpDb(n));
    return new Uint8Array(serialize({ v: SNAPSHOT_VERSION, flags, dbs }));
  }

  private async dumpDb(name: string): Promise<DbDumpV2> {
    const db = await openDb(this.idb, name);
    try {
      const names = Array.from(db.objectStoreNames).sort();
      let cached = this.cache.get(name);
      const shapeChanged = !cached || cached.version !== db.version || cached.stores.size !== names.length || names.some((n) => !cached!.stores.has(n));
      if (!cached || shapeChanged) this.cache.set(name, (cached = { version: db.version, stores: new Map() }));
      if (names.length) {
        // One read-only transaction over every store: later writes wait for it, earlier ones have committed by the
        // time its first request runs — which is when the set of changed stores is taken, so the stores re-read
        // now and the cached ones together form one consistent cut.
        const tx = db.transaction(names, "readonly");
        const fresh = await new Promise<StoreDump[]>((resolve, reject) => {
          const first = tx.objectStore(names[0]!).count();
          first.onerror = () => reject(first.error);
          first.onsuccess = () => {
            const changed = takeWritten(name);
            const stale = shapeChanged ? names : names.filter((n) => changed.has(n) || !cached!.stores.has(n));
            Promise.all(stale.map((n) => readStore(tx.objectStore(n)))).then(resolve, reject);
          };
        });
        await txDone(tx);
        for (const d of fresh) cached.stores.set(d.name, new Uint8Array(serialize(d)));
      } else {
        takeWritten(name);
      }
      return { name, version: db.version, stores: names.map((n) => cached!.stores.get(n)!) };
    } finally {
      db.close();
    }
  }

  /**
   * Recreates the databases of a snapshot exactly (same versions, stores, indexes and records), replacing any
   * that exist under the same names, and returns its flags (layout 1 had none: it was written after every
   * change, so it lags nothing). The object stores named in `emptyWhenLagging` are recreated empty when the
   * snapshot says its outbound sessions may lag. Throws
   * `crypto-state-unreadable` on a blob that is not a snapshot of ours.
   */
  async restore(blob: Uint8Array, opts: { emptyWhenLagging?: readonly string[] } = {}): Promise<SnapshotFlags> {
    let parsed: { v?: unknown; dbs?: unknown; flags?: Partial<SnapshotFlags> };
    try {
      parsed = deserialize(blob) as typeof parsed;
    } catch (err) {
      throw Object.assign(new Error("stored crypto state is not a snapshot"), { code: "crypto-state-unreadable", cause: err });
    }
    if ((parsed?.v !== 1 && parsed?.v !== SNAPSHOT_VERSION) || !Array.isArray(parsed.dbs)) {
      throw Object.assign(new Error(`stored crypto state has an unknown layout (${String(parsed?.v)})`), { code: "crypto-state-unreadable" });
    }
    let dbs: DbDumpV1[];
    /** Layout 2 brings each store's serialized dump: kept as the cache, so a reopen serializes nothing. */
    const raw = new Map<StoreDump, Uint8Array>();
    try {
      dbs = parsed.v === 1 ? parsed.dbs as DbDumpV1[]
        : (parsed.dbs as DbDumpV2[]).map((d) => ({
          name: d.name, version: d.version,
          stores: d.stores.map((b) => { const st = deserialize(b) as StoreDump; raw.set(st, new Uint8Array(b)); return st; }),
        }));
    } catch (err) {
      throw Object.assign(new Error("stored crypto state is not a snapshot"), { code: "crypto-state-unreadable", cause: err });
    }
    for (const d of dbs) {
      if (typeof d?.name !== "string" || !d.name.startsWith(this.prefix)) {
        throw Object.assign(new Error("stored crypto state belongs to another device"), { code: "crypto-state-unreadable" });
      }
    }
    const flags: SnapshotFlags = { outboundMayLag: parsed.v === 1 ? false : parsed.flags?.outboundMayLag !== false };
    const skipStores = (st: StoreDump) => flags.outboundMayLag && (opts.emptyWhenLagging ?? []).includes(st.name);
    this.cache.clear();
    for (const d of dbs) {
      await deleteDb(this.idb, d.name);
      const db = await openDb(this.idb, d.name, d.version, (up) => {
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
            if (skipStores(s)) continue;
            const os = tx.objectStore(s.name);
            // In-line keys live inside the value; passing the key too would be an error.
            s.values.forEach((v, i) => (s.keyPath === null ? os.put(v, s.keys[i]) : os.put(v)));
          }
          await txDone(tx);
        }
      } finally {
        db.close();
      }
      // What was just written is what the blob holds: the first snapshot after this re-reads only later writes.
      takeWritten(d.name);
      const skipped = d.stores.filter(skipStores).map((s) => s.name);
      const cached: CachedDb = { version: d.version, stores: new Map() };
      for (const s of d.stores) if (!skipped.includes(s.name)) cached.stores.set(s.name, raw.get(s) ?? new Uint8Array(serialize(s)));
      this.cache.set(d.name, cached);
    }
    return flags;
  }

  /** Drops the device's databases and what is cached of them. */
  async drop(): Promise<void> {
    this.cache.clear();
    for (const d of await this.idb.databases()) {
      if (d.name?.startsWith(this.prefix)) {
        await deleteDb(this.idb, d.name);
        written.delete(d.name);
      }
    }
  }
}

