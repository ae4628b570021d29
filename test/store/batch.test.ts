// SqlDriver.batch on both engines: one transaction per batch, guards that write nothing when they fail, and on
// SQLite the group commit (batches queued together share a transaction, each in its own savepoint).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BATCH_GUARD_FAILED, type SqlDriver } from "../../src/store/driver.js";
import { SqliteDriver } from "../../src/store/sqlite-driver.js";
import { PostgresDriver } from "../../src/store/postgres-driver.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";

const dir = mkdtempSync(join(tmpdir(), "motr-batch-"));
let server: PostgresServer;
before(async () => { server = await startPostgres(); });
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const engines: Array<[string, () => Promise<SqlDriver>]> = [
  ["sqlite", async () => new SqliteDriver(join(dir, `${Math.random().toString(16).slice(2)}.db`))],
  ["postgres", async () => new PostgresDriver(await server.newDatabase())],
];

for (const [engine, make] of engines) {
  describe(`SqlDriver.batch on ${engine}`, () => {
    async function withTable(fn: (db: SqlDriver) => Promise<void>): Promise<void> {
      const db = await make();
      try {
        const bytes = engine === "postgres" ? "BYTEA" : "BLOB";
        await db.run(`CREATE TABLE t (k TEXT PRIMARY KEY, seq INTEGER NOT NULL, v ${bytes})`);
        await db.run(`CREATE TABLE g (name TEXT PRIMARY KEY, value ${bytes})`);
        await db.run("INSERT INTO g (name, value) VALUES (?, ?)", ["canary", new Uint8Array([1, 2, 3])]);
        await fn(db);
      } finally {
        await db.close();
      }
    }

    it("answers each step: rows for all (RETURNING included), changed counts for run", async () => {
      await withTable(async (db) => {
        const r = await db.batch([
          { op: "all", sql: "SELECT value FROM g WHERE name = ?", params: ["canary"], expect: new Uint8Array([1, 2, 3]) },
          { op: "all", sql: "INSERT INTO t (k, seq, v) VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM t), ?) RETURNING seq", params: ["a", new Uint8Array([7])] },
          { op: "all", sql: "INSERT INTO t (k, seq, v) VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM t), ?) RETURNING seq", params: ["b", null] },
          { op: "run", sql: "INSERT INTO t (k, seq) VALUES (?, 9) ON CONFLICT (k) DO NOTHING", params: ["a"] },
          { op: "run", sql: "UPDATE t SET v = NULL" },
        ]);
        assert.deepEqual(r.slice(1), [[{ seq: 1 }], [{ seq: 2 }], 0, 2]);
        assert.deepEqual((r[0] as Array<Record<string, unknown>>)[0]!.value, new Uint8Array([1, 2, 3]));
      });
    });

    it("a guard that does not hold fails the batch with batch-guard-failed and writes nothing", async () => {
      await withTable(async (db) => {
        await assert.rejects(db.batch([
          { op: "run", sql: "INSERT INTO t (k, seq) VALUES (?, 1)", params: ["before-guard"] },
          { op: "all", sql: "SELECT value FROM g WHERE name = ?", params: ["canary"], expect: new Uint8Array([1, 2, 4]) },
          { op: "run", sql: "INSERT INTO t (k, seq) VALUES (?, 2)", params: ["after-guard"] },
        ]), { code: BATCH_GUARD_FAILED });
        await assert.rejects(db.batch([
          { op: "all", sql: "SELECT value FROM g WHERE name = ?", params: ["missing"], expect: new Uint8Array([1, 2, 3]) },
          { op: "run", sql: "INSERT INTO t (k, seq) VALUES (?, 3)", params: ["no-row"] },
        ]), { code: BATCH_GUARD_FAILED });
        assert.deepEqual(await db.all("SELECT k FROM t"), []);
      });
    });

    it("batches sent at once: a failing one is rolled back whole and alone, the others commit", async () => {
      await withTable(async (db) => {
        const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => db.batch(i === 7
          ? [
            { op: "run", sql: "INSERT INTO t (k, seq) VALUES (?, ?)", params: ["half-of-7", 700] },
            { op: "run", sql: "INSERT INTO t (k, seq) VALUES (?, ?)", params: ["half-of-7", 701] }, // its own key again
          ]
          : [
            { op: "run", sql: "INSERT INTO t (k, seq) VALUES (?, ?)", params: [`k${i}`, i] },
            { op: "run", sql: "UPDATE t SET seq = seq + 100 WHERE k = ?", params: [`k${i}`] },
          ])));
        const failed = results.flatMap((r, i) => (r.status === "rejected" ? [i] : []));
        assert.deepEqual(failed, [7]);
        assert.equal((results[7] as PromiseRejectedResult).reason.code, "database-error");
        const rows = await db.all("SELECT k, seq FROM t ORDER BY seq");
        assert.deepEqual(rows.map((r) => r.k), Array.from({ length: 20 }, (_, i) => `k${i}`).filter((k) => k !== "k7"));
        assert.ok(rows.every((r) => Number(r.seq) >= 100), "each batch ran whole");
        // The driver is still usable and a transaction of the classic kind still works after the group.
        assert.equal(await db.tx(async (q) => q.run("DELETE FROM t WHERE k = ?", ["k0"])), 1);
      });
    });

    it("a statement the engine refuses fails its batch with database-error", async () => {
      await withTable(async (db) => {
        await assert.rejects(db.batch([{ op: "run", sql: "INSERT INTO nowhere VALUES (1)" }]), { code: "database-error" });
        assert.deepEqual(await db.batch([{ op: "all", sql: "SELECT COUNT(*) AS n FROM t" }]), [[{ n: 0 }]]);
      });
    });
  });
}
