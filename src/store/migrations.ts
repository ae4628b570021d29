// Versioned schema migrations for both engines. Each migration runs in its own transaction together with the
// row that records it in schema_version, so a crash mid-migration leaves the previous version intact. A database
// whose version is newer than the last migration here was written by a newer bridge: we refuse to touch it rather
// than run old code against a schema it does not understand.
import type { Dialect, SqlDriver, SqlQueries } from "./driver.js";
import { StoreError } from "./types.js";

export interface Migration {
  version: number;
  name: string;
  /** DDL statements; `{bytes}` and `{int}` are replaced by the engine's column types. */
  statements: string[];
}

function typed(sql: string, dialect: Dialect): string {
  return sql
    .replace(/\{bytes\}/g, dialect === "sqlite" ? "BLOB" : "BYTEA")
    .replace(/\{int\}/g, dialect === "sqlite" ? "INTEGER" : "BIGINT");
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "initial schema",
    statements: [
      // Holds the master-key canary (sealed) and nothing else today.
      `CREATE TABLE meta (name TEXT PRIMARY KEY, value {bytes} NOT NULL)`,
      `CREATE TABLE user_networks (
         user_id TEXT NOT NULL, network_id TEXT NOT NULL, nick TEXT,
         otr_policy TEXT CHECK (otr_policy IN ('never','manual','opportunistic','always')),
         updated_at {int} NOT NULL, PRIMARY KEY (user_id, network_id))`,
      `CREATE TABLE irc_passwords (
         user_id TEXT NOT NULL, network_id TEXT NOT NULL, sealed {bytes} NOT NULL, PRIMARY KEY (user_id, network_id))`,
      `CREATE TABLE otr_private_keys (
         user_id TEXT NOT NULL, network_id TEXT NOT NULL, sealed {bytes} NOT NULL, created_at {int} NOT NULL,
         PRIMARY KEY (user_id, network_id))`,
      `CREATE TABLE instance_tags (
         user_id TEXT NOT NULL, network_id TEXT NOT NULL, tag {int} NOT NULL CHECK (tag >= 256 AND tag <= 4294967295),
         PRIMARY KEY (user_id, network_id))`,
      `CREATE TABLE fingerprints (
         user_id TEXT NOT NULL, network_id TEXT NOT NULL, peer_nick TEXT NOT NULL, fingerprint TEXT NOT NULL,
         trust TEXT NOT NULL CHECK (trust IN ('unverified','verified')),
         verified_by TEXT CHECK (verified_by IN ('smp','manual')),
         first_seen {int} NOT NULL, last_seen {int} NOT NULL,
         PRIMARY KEY (user_id, network_id, peer_nick, fingerprint))`,
      `CREATE TABLE dm_rooms (
         user_id TEXT NOT NULL, network_id TEXT NOT NULL, nick TEXT NOT NULL, room_id TEXT NOT NULL UNIQUE,
         PRIMARY KEY (user_id, network_id, nick))`,
      `CREATE TABLE management_rooms (user_id TEXT PRIMARY KEY, room_id TEXT NOT NULL UNIQUE)`,
      `CREATE TABLE channel_rooms (
         network_id TEXT NOT NULL, channel TEXT NOT NULL, room_id TEXT NOT NULL UNIQUE, PRIMARY KEY (network_id, channel))`,
      `CREATE TABLE peer_policies (
         user_id TEXT NOT NULL, network_id TEXT NOT NULL, nick TEXT NOT NULL,
         policy TEXT NOT NULL CHECK (policy IN ('never','manual','opportunistic','always')),
         PRIMARY KEY (user_id, network_id, nick))`,
      `CREATE TABLE kv_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)`,
    ],
  },
  {
    version: 2,
    name: "channel keys",
    statements: [
      // Per user, not per channel: each Matrix user joins through their own IRC connection with the key they know.
      `CREATE TABLE channel_keys (
         user_id TEXT NOT NULL, network_id TEXT NOT NULL, channel TEXT NOT NULL, sealed {bytes} NOT NULL,
         PRIMARY KEY (user_id, network_id, channel))`,
    ],
  },
  {
    version: 3,
    name: "matrix crypto state",
    statements: [
      // One row per device of the bridge's own (the bot's, each ghost's): its serialized end-to-end crypto state,
      // sealed and bound to (owner, device). Keyed by device, not by user, so a ghost that gets a new device
      // never reads the sessions of the old one.
      `CREATE TABLE crypto_state (
         owner_user_id TEXT NOT NULL, device_id TEXT NOT NULL, sealed {bytes} NOT NULL, updated_at {int} NOT NULL,
         PRIMARY KEY (owner_user_id, device_id))`,
    ],
  },
  {
    version: 4,
    name: "otr sessions",
    statements: [
      // One row per (user, network, folded peer nick): the sealed saved state of an established OTR conversation
      // (src/otr/snapshot.ts), replaced whole on each save and deleted when the conversation ends.
      `CREATE TABLE otr_sessions (
         user_id TEXT NOT NULL, network_id TEXT NOT NULL, nick TEXT NOT NULL, sealed {bytes} NOT NULL, updated_at {int} NOT NULL,
         PRIMARY KEY (user_id, network_id, nick))`,
    ],
  },
  {
    version: 5,
    name: "matrix inbox",
    statements: [
      // Matrix events recorded before their transaction is acknowledged, until every IRC line they caused was
      // written. `sealed` is the event (sealed, bound to room and event id) while pending, NULL once done; done rows
      // stay a while so a redelivered event is recognised by its id, then are pruned.
      `CREATE TABLE inbox_events (
         event_id TEXT PRIMARY KEY, room_id TEXT NOT NULL, seq {int} NOT NULL UNIQUE, sealed {bytes},
         received_at {int} NOT NULL, done_at {int})`,
      `CREATE INDEX inbox_events_done ON inbox_events (done_at)`,
    ],
  },
  {
    version: 6,
    name: "matrix outbox",
    statements: [
      // Messages for Matrix the homeserver has not taken yet (down, slow), in the order the bridge had them; the
      // body (sealed, bound to room and transaction id) is deleted once it took them.
      `CREATE TABLE outbox_messages (
         seq {int} PRIMARY KEY, room_id TEXT NOT NULL, txn_id TEXT NOT NULL, sealed {bytes} NOT NULL, queued_at {int} NOT NULL)`,
    ],
  },
];

export const LATEST_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

const CREATE_VERSION_TABLE = `CREATE TABLE IF NOT EXISTS schema_version (
  version {int} PRIMARY KEY, name TEXT NOT NULL, applied_at {int} NOT NULL)`;

async function currentVersion(q: SqlQueries): Promise<number> {
  const rows = await q.all("SELECT MAX(version) AS v FROM schema_version");
  const v = rows[0]?.v;
  return v === null || v === undefined ? 0 : Number(v);
}

function tooNew(found: number, latest: number): StoreError {
  return new StoreError(
    "schema-too-new",
    `the database schema is version ${found} but this bridge knows versions up to ${latest}: ` +
      `it was written by a newer release. Run that release (or newer), or restore a backup made for this one.`,
  );
}

/** Brings the schema to the latest version (or `migrations`' last, for tests); returns the resulting version. */
export async function migrate(db: SqlDriver, migrations: readonly Migration[] = MIGRATIONS): Promise<number> {
  const latest = migrations.length ? migrations[migrations.length - 1]!.version : 0;
  let version = await db.tx(async (q) => {
    await q.run(typed(CREATE_VERSION_TABLE, db.dialect));
    return currentVersion(q);
  }, { exclusive: true });
  if (version > latest) throw tooNew(version, latest);
  for (const m of migrations) {
    if (m.version <= version) continue;
    try {
      version = await db.tx(async (q) => {
        // Another process may have migrated while we waited for the lock.
        const now = await currentVersion(q);
        if (now > latest) throw tooNew(now, latest);
        if (now >= m.version) return now;
        for (const s of m.statements) await q.run(typed(s, db.dialect));
        await q.run("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)", [m.version, m.name, Date.now()]);
        return m.version;
      }, { exclusive: true });
    } catch (e) {
      if (e instanceof StoreError && e.code !== "database-error") throw e;
      throw new StoreError("migration-failed", `schema migration ${m.version} (${m.name}) failed: ${(e as Error).message}`, { cause: e });
    }
  }
  return version;
}

/** Reads the schema version without changing anything (0 for an empty database). */
export async function schemaVersion(db: SqlDriver): Promise<number> {
  const exists = db.dialect === "sqlite"
    ? await db.all("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
    : await db.all("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_version'");
  return exists.length ? currentVersion(db) : 0;
}
