// Entry points of the store: open an engine from the `store` config section, find the master key, rotate it.
// Only src/main.ts and src/cli.ts call these; everything else receives a `Store`.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { SqlDriver } from "./driver.js";
import { generateMasterKey, loadMasterKey, masterKeyFilePath, MASTER_KEY_ENV, parseMasterKey, writeMasterKeyFile, type MasterKeySource } from "./master-key.js";
import { migrate, schemaVersion, LATEST_SCHEMA_VERSION } from "./migrations.js";
import { PostgresDriver } from "./postgres-driver.js";
import { Sealer } from "./seal.js";
import { SqliteDriver } from "./sqlite-driver.js";
import { cacheRoomMappings } from "./room-cache.js";
import { holdsSealedData, resealAll, SqlStore, verifyOrPlantCanary } from "./sql-store.js";
import { StoreError, type Store, type StoreConfig } from "./types.js";

export * from "./types.js";
export { MemoryStore } from "./memory.js";
export { MASTER_KEY_ENV, formatMasterKey, generateMasterKey, parseMasterKey, type MasterKeySource } from "./master-key.js";
export { LATEST_SCHEMA_VERSION } from "./migrations.js";

export const DEFAULT_SQLITE_PATH = "./data/bridge.db";

function postgresUrl(cfg: StoreConfig): string {
  if (cfg.postgres_url) return cfg.postgres_url;
  if (cfg.postgres_url_file) {
    try {
      const url = readFileSync(cfg.postgres_url_file, "utf8").trim();
      if (url) return url;
    } catch (e) {
      throw new StoreError("config-invalid", `cannot read store.postgres_url_file ${cfg.postgres_url_file}: ${(e as Error).message}`, { cause: e });
    }
  }
  throw new StoreError("config-invalid", "store.engine is postgres but neither store.postgres_url nor store.postgres_url_file gives a connection string");
}

/** Opens the engine's connection without touching the schema. */
export function openDriver(cfg: StoreConfig): SqlDriver {
  try {
    switch (cfg.engine) {
      case "sqlite":
        return new SqliteDriver(resolve(cfg.sqlite_path ?? DEFAULT_SQLITE_PATH));
      case "postgres":
        return new PostgresDriver(postgresUrl(cfg));
      default:
        throw new StoreError("config-invalid", `store.engine must be sqlite or postgres, got ${String((cfg as { engine: unknown }).engine)}`);
    }
  } catch (e) {
    if (e instanceof StoreError) throw e;
    throw new StoreError("database-unavailable", `cannot open the ${cfg.engine} database: ${(e as Error).message}`, { cause: e });
  }
}

/** At open, an engine failure (no server, not a database file, no permission) means the database is unavailable. */
function wrapOpenError(cfg: StoreConfig, e: unknown): unknown {
  if (e instanceof StoreError && e.code !== "database-error") return e;
  const inner = e instanceof StoreError ? e.cause : e;
  return new StoreError("database-unavailable", `cannot use the ${cfg.engine} database: ${(inner as Error)?.message ?? String(inner)}`, { cause: inner });
}

/** Runs `fn` on a migrated driver and closes it afterwards. */
async function withMigratedDriver<T>(cfg: StoreConfig, fn: (db: SqlDriver) => Promise<T>): Promise<T> {
  const db = openDriver(cfg);
  try {
    await migrate(db);
    return await fn(db);
  } catch (e) {
    throw wrapOpenError(cfg, e);
  } finally {
    await db.close();
  }
}

/**
 * Opens the configured engine, applies pending migrations and checks `masterKey` against the database's canary.
 * Fails with `schema-too-new`, `master-key-wrong`, `master-key-malformed`, `canary-missing`, `database-unavailable`.
 */
export async function openStore(cfg: StoreConfig, masterKey: Uint8Array): Promise<Store> {
  const sealer = new Sealer(masterKey); // reject a malformed key before touching the database
  const db = openDriver(cfg);
  try {
    await migrate(db);
    const canary = await verifyOrPlantCanary(db, sealer);
    return cacheRoomMappings(new SqlStore(db, sealer, canary));
  } catch (e) {
    await db.close();
    throw wrapOpenError(cfg, e);
  }
}

/** Whether the database already holds sealed data (then a missing master key is an error, not a first start). */
export async function storeHoldsSealedData(cfg: StoreConfig): Promise<boolean> {
  const db = openDriver(cfg);
  try {
    const version = await schemaVersion(db);
    if (version === 0) return false;
    if (version > LATEST_SCHEMA_VERSION) await migrate(db); // throws schema-too-new with the full message
    return await holdsSealedData(db, version);
  } catch (e) {
    throw wrapOpenError(cfg, e);
  } finally {
    await db.close();
  }
}

/**
 * What the daemon calls at start: finds the master key (env, key file, or a new key file when the database holds
 * no sealed data yet) and opens the store with it.
 */
export async function openConfiguredStore(cfg: StoreConfig, env: NodeJS.ProcessEnv = process.env): Promise<{ store: Store; masterKeySource: MasterKeySource }> {
  const sealedDataExists = await storeHoldsSealedData(cfg);
  const { key, source, path } = loadMasterKey(cfg, { sealedDataExists, env });
  try {
    return { store: await openStore(cfg, key), masterKeySource: source };
  } catch (e) {
    if (e instanceof StoreError && e.code === "master-key-wrong" && path && existsSync(`${path}.new`)) {
      throw new StoreError("master-key-wrong", `${e.message} A key rotation seems to have been interrupted (${path}.new exists): run \`matrix-otr-irc store rotate-master-key\` again to finish it.`, { cause: e });
    }
    throw e;
  }
}

/**
 * Re-seals every secret from `oldKey` to `newKey` in one transaction (all or nothing). `oldKey` must open the
 * canary (`master-key-wrong` otherwise). Returns how many secrets were re-sealed.
 */
export async function rotateMasterKey(cfg: StoreConfig, oldKey: Uint8Array, newKey: Uint8Array): Promise<{ resealed: number }> {
  const oldSealer = new Sealer(oldKey);
  const newSealer = new Sealer(newKey);
  if (Buffer.from(oldKey).equals(Buffer.from(newKey))) throw new StoreError("invalid-argument", "the new master key equals the old one");
  return withMigratedDriver(cfg, async (db) => ({ resealed: await resealAll(db, oldSealer, newSealer) }));
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

/**
 * The whole rotation for a key-file deployment, crash-safe at every step: the new key is written durably to
 * `<key file>.new` first, then the database is re-sealed, then `.new` replaces the key file. If the process dies
 * between the last two steps, running this again notices that `.new` already opens the database and finishes
 * the rename. When the key comes from MATRIX_OTR_IRC_MASTER_KEY this refuses (`invalid-argument`): use
 * rotateMasterKey and update the variable.
 */
export async function rotateMasterKeyFile(cfg: StoreConfig, env: NodeJS.ProcessEnv = process.env): Promise<{ resealed: number; keyFile: string }> {
  if ((env[MASTER_KEY_ENV] ?? "").trim() !== "") {
    throw new StoreError("invalid-argument", `the master key comes from ${MASTER_KEY_ENV}; rotate with an explicit new key and update the variable`);
  }
  const path = masterKeyFilePath(cfg);
  const pending = `${path}.new`;
  let oldKey: Uint8Array;
  try {
    oldKey = parseMasterKey(readFileSync(path, "utf8"), `master key file ${path}`);
  } catch (e) {
    if (e instanceof StoreError) throw e;
    throw new StoreError("master-key-missing", `cannot read the master key file ${path}: ${(e as Error).message}`, { cause: e });
  }
  let pendingKey: Uint8Array | null = null;
  try {
    pendingKey = parseMasterKey(readFileSync(pending, "utf8"), `pending master key file ${pending}`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  if (pendingKey) {
    // An earlier rotation stopped after re-sealing: if the pending key opens the database, only the rename is left.
    try {
      await openStore(cfg, pendingKey).then((s) => s.close());
      renameSync(pending, path);
      fsyncDir(dirname(path));
      return { resealed: 0, keyFile: path };
    } catch (e) {
      if (!(e instanceof StoreError && e.code === "master-key-wrong")) throw e;
      rmSync(pending); // it never sealed anything: a leftover from a rotation that stopped before re-sealing
    }
  }
  const newKey = generateMasterKey();
  writeMasterKeyFile(pending, newKey, { exclusive: true });
  const { resealed } = await rotateMasterKey(cfg, oldKey, newKey);
  renameSync(pending, path);
  fsyncDir(dirname(path));
  return { resealed, keyFile: path };
}
