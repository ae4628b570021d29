// Raw database access for the store's security tests: dump every table (to prove "nothing changed") and poke rows
// directly (to tamper with or swap sealed values as an attacker with write access to the database would).
import { openDriver } from "../../src/store/index.js";
import type { SqlValue } from "../../src/store/driver.js";
import type { StoreConfig } from "../../src/store/types.js";

export const TABLES = ["schema_version", "meta", "user_networks", "irc_passwords", "otr_private_keys", "instance_tags", "fingerprints", "dm_rooms", "management_rooms", "channel_rooms", "peer_policies", "kv_state", "channel_keys", "crypto_state", "otr_sessions", "inbox_events", "outbox_messages"];

/** `tables` lets a test dump a database at an older schema version, which lacks the newer tables. */
export async function dumpTables(cfg: StoreConfig, tables: readonly string[] = TABLES): Promise<string> {
  const db = openDriver(cfg);
  try {
    const out: Record<string, unknown[]> = {};
    for (const t of tables) {
      const rows = await db.all(`SELECT * FROM ${t}`);
      out[t] = rows
        .map((r) => JSON.stringify(r, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v)))
        .sort();
    }
    return JSON.stringify(out);
  } finally {
    await db.close();
  }
}

export async function rawRun(cfg: StoreConfig, sql: string, params: SqlValue[] = []): Promise<number> {
  const db = openDriver(cfg);
  try {
    return await db.run(sql, params);
  } finally {
    await db.close();
  }
}

export async function rawAll(cfg: StoreConfig, sql: string, params: SqlValue[] = []): Promise<Record<string, unknown>[]> {
  const db = openDriver(cfg);
  try {
    return await db.all(sql, params);
  } finally {
    await db.close();
  }
}
