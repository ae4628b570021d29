// idb-snapshot.ts: incremental snapshots of fake-indexeddb databases, their restore, and the layout-1 blobs
// written before snapshots became incremental.
import { test } from "node:test";
import assert from "node:assert/strict";
import { serialize } from "node:v8";
import { loadWasm } from "../../src/matrix/crypto/wasm.js";
import { Snapshotter, type IdbFactory } from "../../src/matrix/crypto/idb-snapshot.js";

type Db = { transaction(n: string[], m: string): { objectStore(n: string): { put(v: unknown, k?: unknown): unknown; getAll(): { onsuccess: (() => void) | null; result: unknown[] } }; oncomplete: (() => void) | null }; close(): void; createObjectStore(n: string, o: object): unknown };

function open(idb: IdbFactory, name: string, stores: string[]): Promise<Db> {
  return new Promise((resolve) => {
    const r = idb.open(name, 1) as unknown as { onupgradeneeded: () => void; onsuccess: () => void; result: Db };
    r.onupgradeneeded = () => { for (const s of stores) r.result.createObjectStore(s, { keyPath: null, autoIncrement: false }); };
    r.onsuccess = () => resolve(r.result);
  });
}
function put(db: Db, store: string, key: string, value: unknown): Promise<void> {
  return new Promise((resolve) => { const tx = db.transaction([store], "readwrite"); tx.objectStore(store).put(value, key); tx.oncomplete = () => resolve(); });
}
function all(db: Db, store: string): Promise<unknown[]> {
  return new Promise((resolve) => { const r = db.transaction([store], "readonly").objectStore(store).getAll(); r.onsuccess = () => resolve(r.result); });
}

test("an incremental snapshot restores the latest state of every store; nothing written means nothing changed", async () => {
  const { idb } = await loadWasm();
  const snap = new Snapshotter(idb, "snaptest1/");
  const db = await open(idb, "snaptest1/a", ["one", "two"]);
  await put(db, "one", "k", { v: 1 });
  await put(db, "two", "k", { v: 2 });
  assert.equal(snap.changed(), true);
  await snap.snapshot({ outboundMayLag: true });
  assert.equal(snap.changed(), false);
  await put(db, "two", "k", { v: 3 });
  assert.deepEqual(snap.changedStores(), ["a/two"]);
  const blob = await snap.snapshot({ outboundMayLag: true });
  db.close();
  await snap.drop();
  const again = new Snapshotter(idb, "snaptest1/");
  assert.deepEqual(await again.restore(blob), { outboundMayLag: true });
  assert.equal(again.changed(), false);
  const db2 = await open(idb, "snaptest1/a", []);
  assert.deepEqual([await all(db2, "one"), await all(db2, "two")], [[{ v: 1 }], [{ v: 3 }]]);
  db2.close();
  await again.drop();
});

test("a lagging snapshot restores the named stores empty; a layout-1 blob restores whole and lags nothing", async () => {
  const { idb } = await loadWasm();
  const snap = new Snapshotter(idb, "snaptest2/");
  const db = await open(idb, "snaptest2/a", ["keep", "outbound"]);
  await put(db, "keep", "k", "kept");
  await put(db, "outbound", "k", "stale");
  const blob = await snap.snapshot({ outboundMayLag: true });
  db.close();
  await snap.drop();
  await snap.restore(blob, { emptyWhenLagging: ["outbound"] });
  let d = await open(idb, "snaptest2/a", []);
  assert.deepEqual([await all(d, "keep"), await all(d, "outbound")], [["kept"], []]);
  d.close();
  await snap.drop();

  const v1 = new Uint8Array(serialize({ v: 1, dbs: [{ name: "snaptest2/a", version: 1, stores: [
    { name: "keep", keyPath: null, autoIncrement: false, indexes: [], keys: ["k"], values: ["old layout"] },
    { name: "outbound", keyPath: null, autoIncrement: false, indexes: [], keys: ["k"], values: ["current"] },
  ] }] }));
  assert.deepEqual(await snap.restore(v1, { emptyWhenLagging: ["outbound"] }), { outboundMayLag: false });
  d = await open(idb, "snaptest2/a", []);
  assert.deepEqual([await all(d, "keep"), await all(d, "outbound")], [["old layout"], ["current"]]);
  d.close();
  await snap.drop();
  await assert.rejects(snap.restore(new Uint8Array([1, 2, 3])), { code: "crypto-state-unreadable" });
});
