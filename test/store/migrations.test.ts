// Schema migrations on both SQL engines: an empty database reaches the latest version, each migration is atomic,
// and a database written by a newer release is refused untouched.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { LATEST_SCHEMA_VERSION, openConfiguredStore, openDriver, openStore, storeHoldsSealedData } from "../../src/store/index.js";
import { MIGRATIONS, migrate, schemaVersion } from "../../src/store/migrations.js";
import type { StoreConfig } from "../../src/store/types.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";
import { dumpTables, rawAll, rawRun } from "./helpers.js";
import { rejectsCode } from "./suite.js";

const dir = mkdtempSync(join(tmpdir(), "motr-mig-"));
let server: PostgresServer | undefined;
before(async () => { server = await startPostgres(); });
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});
const key = new Uint8Array(randomBytes(32));

const engines: [string, () => Promise<StoreConfig>][] = [
  ["sqlite", async () => ({ engine: "sqlite", sqlite_path: join(dir, `${randomBytes(6).toString("hex")}.db`), master_key_file: join(dir, `${randomBytes(6).toString("hex")}.key`) })],
  ["postgres", async () => ({ engine: "postgres", postgres_url: await server!.newDatabase(), master_key_file: join(dir, `${randomBytes(6).toString("hex")}.key`) })],
];

for (const [name, makeCfg] of engines) {
  describe(`migrations on ${name}`, () => {
    it("bring an empty database to the latest version once, recording each step", async () => {
      const cfg = await makeCfg();
      assert.equal(await storeHoldsSealedData(cfg), false);
      const s = await openStore(cfg, key);
      await s.close();
      const rows = await rawAll(cfg, "SELECT version FROM schema_version ORDER BY version");
      assert.deepEqual(rows.map((r) => Number(r.version)), MIGRATIONS.map((m) => m.version));
      const before = await dumpTables(cfg);
      await (await openStore(cfg, key)).close();
      assert.equal(await dumpTables(cfg), before, "reopening applies nothing again");
    });

    it("refuse a database newer than the code (schema-too-new) without touching it", async () => {
      const cfg = await makeCfg();
      await (await openStore(cfg, key)).close();
      await rawRun(cfg, "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)", [LATEST_SCHEMA_VERSION + 1, "from the future", 1]);
      const before = await dumpTables(cfg);
      await rejectsCode(openStore(cfg, key), "schema-too-new");
      await rejectsCode(storeHoldsSealedData(cfg), "schema-too-new");
      await rejectsCode(openConfiguredStore(cfg, {}), "schema-too-new");
      assert.equal(await dumpTables(cfg), before);
    });

    it("roll back a failing migration entirely and keep the previous version", async () => {
      const cfg = await makeCfg();
      const db = openDriver(cfg);
      try {
        await migrate(db);
        const broken = [...MIGRATIONS, { version: LATEST_SCHEMA_VERSION + 1, name: "broken", statements: ["CREATE TABLE half_done (a INTEGER)", "THIS IS NOT SQL"] }];
        await rejectsCode(migrate(db, broken), "migration-failed");
        assert.equal(await schemaVersion(db), LATEST_SCHEMA_VERSION);
        await assert.rejects(db.all("SELECT * FROM half_done"), "the first statement of the failed migration was rolled back");
        const next = [...MIGRATIONS, { version: LATEST_SCHEMA_VERSION + 1, name: "add notes", statements: ["CREATE TABLE notes (a INTEGER)"] }];
        assert.equal(await migrate(db, next), LATEST_SCHEMA_VERSION + 1);
        assert.deepEqual(await db.all("SELECT * FROM notes"), []);
      } finally {
        await db.close();
      }
      // This release knows only up to LATEST_SCHEMA_VERSION: the migrated database is now "too new" for it.
      await rejectsCode(openStore(cfg, key), "schema-too-new");
    });

    it("let several bridges open a fresh database at once", async () => {
      const cfg = await makeCfg();
      const stores = await Promise.all([openStore(cfg, key), openStore(cfg, key), openStore(cfg, key)]);
      for (const s of stores) await s.close();
      assert.equal((await rawAll(cfg, "SELECT * FROM schema_version")).length, MIGRATIONS.length);
      assert.equal((await rawAll(cfg, "SELECT * FROM meta")).length, 1, "one canary");
    });
  });
}
