// Schema migrations on both SQL engines: an empty database reaches the latest version, each migration is atomic,
// a database of every earlier version (1: before channel keys, 2: before crypto state) upgrades with its rows
// intact, and a database written by a newer release is refused untouched.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { LATEST_SCHEMA_VERSION, openConfiguredStore, openDriver, openStore, storeHoldsSealedData } from "../../src/store/index.js";
import { writeMasterKeyFile } from "../../src/store/master-key.js";
import { MIGRATIONS, migrate, schemaVersion } from "../../src/store/migrations.js";
import { CANARY_BINDING, CANARY_PLAINTEXT, Sealer } from "../../src/store/seal.js";
import { SqlStore } from "../../src/store/sql-store.js";
import type { FingerprintRecord, StoreConfig } from "../../src/store/types.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";
import { dumpTables, rawAll, rawRun, TABLES } from "./helpers.js";
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

    it("upgrade a version-1 database holding data to the latest version, keeping every row and secret", async () => {
      const cfg = await makeCfg();
      const v1Key = new Uint8Array(randomBytes(32));
      const privateKey = new Uint8Array(randomBytes(300));
      const fpr: FingerprintRecord = {
        userId: "@alice:x", networkId: "libera", peerNick: "carol", fingerprint: "ab".repeat(20),
        trust: "verified", verifiedBy: "smp", firstSeen: 10, lastSeen: 20,
      };
      // Build the database the way a version-1 bridge did: migration 1 only, its canary, data through the store.
      const db = openDriver(cfg);
      try {
        assert.equal(await migrate(db, MIGRATIONS.filter((m) => m.version === 1)), 1);
        const sealer = new Sealer(v1Key);
        const canary = sealer.sealString("canary", CANARY_BINDING, CANARY_PLAINTEXT);
        await db.run("INSERT INTO meta (name, value) VALUES (?, ?)", ["master-key-canary", canary]);
        const v1 = new SqlStore(db, sealer, canary);
        await v1.putUserNetwork({ userId: "@alice:x", networkId: "libera", nick: "alice", otrPolicy: "always", updatedAt: 5 });
        await v1.setIrcPassword("@alice:x", "libera", "v1-password");
        assert.deepEqual(await v1.putOtrPrivateKeyIfAbsent("@alice:x", "libera", privateKey), privateKey);
        await v1.putInstanceTagIfAbsent("@alice:x", "libera", 0x1234);
        await v1.putFingerprint(fpr);
        await v1.putDmRoom("@alice:x", "libera", "carol", "!dm:x");
        await v1.putManagementRoom("@alice:x", "!mgmt:x");
        await v1.putChannelRoom("libera", "#otr", "!chan:x");
        await v1.putPeerPolicy("@alice:x", "libera", "carol", "manual");
        await v1.putState("sync", "s1");
        await assert.rejects(db.all("SELECT * FROM channel_keys"), "version 1 has no channel_keys table");
      } finally {
        await db.close();
      }
      const v1Tables = TABLES.filter((t) => t !== "channel_keys" && t !== "crypto_state" && t !== "otr_sessions" && t !== "inbox_events" && t !== "outbox_messages" && t !== "schema_version");
      const before = await dumpTables(cfg, v1Tables);

      // The daemon's start path: it asks whether sealed data exists before migrating, on the old schema.
      assert.equal(await storeHoldsSealedData(cfg), true);
      writeMasterKeyFile(cfg.master_key_file!, v1Key, { exclusive: true });
      const { store, masterKeySource } = await openConfiguredStore(cfg, {});
      assert.equal(masterKeySource, "file");
      try {
        assert.deepEqual((await rawAll(cfg, "SELECT version FROM schema_version ORDER BY version")).map((r) => Number(r.version)), MIGRATIONS.map((m) => m.version));
        assert.equal(await dumpTables(cfg, v1Tables), before, "the migration changed no existing row");
        assert.equal(await store.getIrcPassword("@alice:x", "libera"), "v1-password");
        assert.deepEqual(await store.getOtrPrivateKey("@alice:x", "libera"), privateKey);
        assert.equal(await store.getInstanceTag("@alice:x", "libera"), 0x1234);
        assert.deepEqual(await store.listFingerprints("@alice:x", "libera"), [fpr]);
        assert.deepEqual(await store.getUserNetwork("@alice:x", "libera"), { userId: "@alice:x", networkId: "libera", nick: "alice", otrPolicy: "always", updatedAt: 5 });
        assert.deepEqual(await store.findDmByRoom("!dm:x"), { userId: "@alice:x", networkId: "libera", foldedNick: "carol" });
        assert.equal(await store.getManagementRoom("@alice:x"), "!mgmt:x");
        assert.equal(await store.getChannelRoom("libera", "#otr"), "!chan:x");
        assert.equal(await store.getPeerPolicy("@alice:x", "libera", "carol"), "manual");
        assert.equal(await store.getState("sync"), "s1");
        assert.equal(await store.getChannelKey("@alice:x", "libera", "#otr"), null);
        await store.setChannelKey("@alice:x", "libera", "#otr", "new-in-v2");
        assert.equal(await store.getChannelKey("@alice:x", "libera", "#otr"), "new-in-v2");
      } finally {
        await store.close();
      }
      const after = await dumpTables(cfg);
      await (await openStore(cfg, v1Key)).close();
      assert.equal(await dumpTables(cfg), after, "reopening the upgraded database applies nothing again");
    });

    it("upgrade a version-2 database holding data to version 3, keeping every row and secret, channel keys included", async () => {
      const cfg = await makeCfg();
      const v2Key = new Uint8Array(randomBytes(32));
      const privateKey = new Uint8Array(randomBytes(300));
      const fpr: FingerprintRecord = {
        userId: "@alice:x", networkId: "libera", peerNick: "carol", fingerprint: "cd".repeat(20),
        trust: "verified", verifiedBy: "manual", firstSeen: 11, lastSeen: 22,
      };
      // Build the database the way a version-2 bridge did: migrations 1 and 2, its canary, data through the store.
      const db = openDriver(cfg);
      try {
        assert.equal(await migrate(db, MIGRATIONS.filter((m) => m.version <= 2)), 2);
        const sealer = new Sealer(v2Key);
        const canary = sealer.sealString("canary", CANARY_BINDING, CANARY_PLAINTEXT);
        await db.run("INSERT INTO meta (name, value) VALUES (?, ?)", ["master-key-canary", canary]);
        const v2 = new SqlStore(db, sealer, canary);
        await v2.putUserNetwork({ userId: "@alice:x", networkId: "libera", nick: "alice", otrPolicy: "manual", updatedAt: 6 });
        await v2.setIrcPassword("@alice:x", "libera", "v2-password");
        assert.deepEqual(await v2.putOtrPrivateKeyIfAbsent("@alice:x", "libera", privateKey), privateKey);
        await v2.putInstanceTagIfAbsent("@alice:x", "libera", 0x4321);
        await v2.putFingerprint(fpr);
        await v2.putDmRoom("@alice:x", "libera", "carol", "!dm:x");
        await v2.putManagementRoom("@alice:x", "!mgmt:x");
        await v2.putChannelRoom("libera", "#otr", "!chan:x");
        await v2.setChannelKey("@alice:x", "libera", "#otr", "v2-channel-key");
        await v2.setChannelKey("@bob:x", "libera", "#otr", "bobs-v2-key");
        await v2.putPeerPolicy("@alice:x", "libera", "carol", "always");
        await v2.putState("sync", "s2");
        await assert.rejects(db.all("SELECT * FROM crypto_state"), "version 2 has no crypto_state table");
      } finally {
        await db.close();
      }
      const v2Tables = TABLES.filter((t) => t !== "crypto_state" && t !== "otr_sessions" && t !== "inbox_events" && t !== "outbox_messages" && t !== "schema_version");
      const before = await dumpTables(cfg, v2Tables);

      // The daemon's start path: asked before migrating, on the version-2 schema (no crypto_state to look at yet).
      assert.equal(await storeHoldsSealedData(cfg), true);
      writeMasterKeyFile(cfg.master_key_file!, v2Key, { exclusive: true });
      const { store, masterKeySource } = await openConfiguredStore(cfg, {});
      assert.equal(masterKeySource, "file");
      try {
        assert.deepEqual((await rawAll(cfg, "SELECT version FROM schema_version ORDER BY version")).map((r) => Number(r.version)), [1, 2, 3, 4, 5, 6]);
        assert.equal(await dumpTables(cfg, v2Tables), before, "the migration changed no existing row");
        assert.equal(await store.getIrcPassword("@alice:x", "libera"), "v2-password");
        assert.deepEqual(await store.getOtrPrivateKey("@alice:x", "libera"), privateKey);
        assert.equal(await store.getInstanceTag("@alice:x", "libera"), 0x4321);
        assert.deepEqual(await store.listFingerprints("@alice:x", "libera"), [fpr]);
        assert.deepEqual(await store.getUserNetwork("@alice:x", "libera"), { userId: "@alice:x", networkId: "libera", nick: "alice", otrPolicy: "manual", updatedAt: 6 });
        assert.deepEqual(await store.findDmByRoom("!dm:x"), { userId: "@alice:x", networkId: "libera", foldedNick: "carol" });
        assert.equal(await store.getManagementRoom("@alice:x"), "!mgmt:x");
        assert.equal(await store.getChannelRoom("libera", "#otr"), "!chan:x");
        assert.equal(await store.getChannelKey("@alice:x", "libera", "#otr"), "v2-channel-key");
        assert.equal(await store.getChannelKey("@bob:x", "libera", "#otr"), "bobs-v2-key");
        assert.equal(await store.getPeerPolicy("@alice:x", "libera", "carol"), "always");
        assert.equal(await store.getState("sync"), "s2");
        assert.deepEqual(await store.listCryptoDevices(), []);
        assert.equal(await store.getCryptoState("@ircbot:x", "BOTDEVICE"), null);
        const state = new Uint8Array(randomBytes(2000));
        await store.putCryptoState("@ircbot:x", "BOTDEVICE", state);
        assert.deepEqual(await store.getCryptoState("@ircbot:x", "BOTDEVICE"), state);
      } finally {
        await store.close();
      }
      const after = await dumpTables(cfg);
      await (await openStore(cfg, v2Key)).close();
      assert.equal(await dumpTables(cfg), after, "reopening the upgraded database applies nothing again");
    });

    for (const from of [1, 2]) {
      it(`start on a version-${from} database that holds no secret yet (a crash before the canary was planted)`, async () => {
        const cfg = await makeCfg();
        const db = openDriver(cfg);
        try {
          assert.equal(await migrate(db, MIGRATIONS.filter((m) => m.version <= from)), from);
        } finally {
          await db.close();
        }
        // Asked before migrating: the tables of later versions do not exist yet and must not be queried.
        assert.equal(await storeHoldsSealedData(cfg), false);
        const { store, masterKeySource } = await openConfiguredStore(cfg, {});
        assert.equal(masterKeySource, "created");
        await store.setChannelKey("@alice:x", "libera", "#otr", "k");
        assert.equal(await store.getChannelKey("@alice:x", "libera", "#otr"), "k");
        await store.putCryptoState("@alice:x", "DEVICE", new Uint8Array([1, 2]));
        assert.deepEqual(await store.getCryptoState("@alice:x", "DEVICE"), new Uint8Array([1, 2]));
        await store.close();
        assert.deepEqual((await rawAll(cfg, "SELECT version FROM schema_version ORDER BY version")).map((r) => Number(r.version)), MIGRATIONS.map((m) => m.version));
      });
    }

    it("let several bridges open a fresh database at once", async () => {
      const cfg = await makeCfg();
      const stores = await Promise.all([openStore(cfg, key), openStore(cfg, key), openStore(cfg, key)]);
      for (const s of stores) await s.close();
      assert.equal((await rawAll(cfg, "SELECT * FROM schema_version")).length, MIGRATIONS.length);
      assert.equal((await rawAll(cfg, "SELECT * FROM meta")).length, 1, "one canary");
    });
  });
}
