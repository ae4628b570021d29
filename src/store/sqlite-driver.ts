// better-sqlite3 behind the async SqlDriver surface. better-sqlite3 is synchronous, but a Store transaction awaits
// between statements, so every operation goes through one FIFO lock: no statement from another caller can slip
// into an open transaction. The lock is shared by every connection of this process to the same file: otherwise a
// second connection's synchronous BEGIN would block the event loop on SQLite's busy timeout while the first
// connection, unable to run, holds the write lock (a self-deadlock ending in SQLITE_BUSY).
//
// Durability: WAL with synchronous=FULL. A process crash (SIGKILL) loses nothing committed even with NORMAL, but
// NORMAL may drop the last commits on power loss, and the bridge hands a private key to the OTR engine as soon as
// putOtrPrivateKeyIfAbsent resolves; FULL makes "resolved" mean "on disk". Writes are rare, so the extra fsync per
// commit costs nothing that matters.
import Database from "better-sqlite3";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { dbError, type Row, type SqlDriver, type SqlQueries, type SqlValue } from "./driver.js";
import { StoreError } from "./types.js";

type Statement = Database.Statement<unknown[], unknown>;

const fileMutexes = new Map<string, { tail: Promise<void> }>();

function toParam(v: SqlValue): unknown {
  return v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v;
}

function fromRow(row: Row): Row {
  for (const [k, val] of Object.entries(row)) {
    if (Buffer.isBuffer(val)) row[k] = new Uint8Array(val);
  }
  return row;
}

/** How long a replaced OTR session state may stay in the WAL before a checkpoint erases it. */
export const ERASE_DELAY_MS = 250;

export class SqliteDriver implements SqlDriver {
  readonly dialect = "sqlite" as const;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Statement>();
  private readonly mutex: { tail: Promise<void> };
  private closed = false;
  private eraseTimer: NodeJS.Timeout | null = null;

  constructor(path: string) {
    if (path !== ":memory:") {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // Create the file ourselves so it is private from the start; SQLite gives the -wal and -shm files the
      // database file's permissions. What stays readable in it (ids, rooms, fingerprints) is not for other users.
      closeSync(openSync(path, "a", 0o600));
    }
    this.db = new Database(path);
    // Other processes (the CLI during a key rotation) may hold the write lock briefly: wait rather than fail.
    this.db.pragma("busy_timeout = 10000");
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.pragma("foreign_keys = ON");
    // Freed space in the main file is zeroed, so a replaced OTR session state (DH keys OTR has forgotten) does not
    // linger in a free page or cell. The WAL still holds old page images until a checkpoint: see eraseSoon.
    this.db.pragma("secure_delete = ON");
    if (path !== ":memory:") this.checkpoint(); // what a crash left in the WAL
    let mutex = path === ":memory:" ? undefined : fileMutexes.get(path);
    if (!mutex) {
      mutex = { tail: Promise.resolve() };
      if (path !== ":memory:") fileMutexes.set(path, mutex);
    }
    this.mutex = mutex;
  }

  private prepare(sql: string): Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private direct: SqlQueries = {
    dialect: "sqlite",
    all: async (sql, params = []) => {
      try {
        return (this.prepare(sql).all(...params.map(toParam)) as Row[]).map(fromRow);
      } catch (e) {
        throw dbError(e);
      }
    },
    run: async (sql, params = []) => {
      try {
        return this.prepare(sql).run(...params.map(toParam)).changes;
      } catch (e) {
        throw dbError(e);
      }
    },
  };

  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreError("store-closed", "the store is closed");
    const previous = this.mutex.tail;
    let release!: () => void;
    this.mutex.tail = new Promise<void>((r) => (release = r));
    await previous;
    try {
      if (this.closed) throw new StoreError("store-closed", "the store is closed");
      return await fn();
    } finally {
      release();
    }
  }

  all(sql: string, params?: readonly SqlValue[]): Promise<Row[]> {
    return this.locked(() => this.direct.all(sql, params));
  }

  run(sql: string, params?: readonly SqlValue[]): Promise<number> {
    return this.locked(() => this.direct.run(sql, params));
  }

  tx<T>(fn: (q: SqlQueries) => Promise<T>): Promise<T> {
    return this.locked(async () => {
      try {
        this.db.exec("BEGIN IMMEDIATE");
      } catch (e) {
        throw dbError(e);
      }
      try {
        const result = await fn(this.direct);
        this.db.exec("COMMIT");
        return result;
      } catch (e) {
        if (this.db.inTransaction) this.db.exec("ROLLBACK");
        throw dbError(e);
      }
    });
  }

  /**
   * A TRUNCATE checkpoint within ERASE_DELAY_MS: the WAL's pages go into the main file (where secure_delete has
   * zeroed what was freed) and the WAL is cut to zero bytes, so old row versions are no longer in any file of the
   * database. Batched, since a busy bridge replaces session states many times a second.
   */
  eraseSoon(): void {
    if (this.eraseTimer !== null || this.closed) return;
    this.eraseTimer = setTimeout(() => {
      this.eraseTimer = null;
      void this.locked(async () => this.checkpoint()).catch(() => undefined);
    }, ERASE_DELAY_MS);
    this.eraseTimer.unref();
  }

  private checkpoint(): void {
    try {
      this.db.pragma("wal_checkpoint(TRUNCATE)");
    } catch {
      // Busy (another process reads): the next write tries again, and close() does too.
    }
  }

  async close(): Promise<void> {
    if (this.eraseTimer !== null) clearTimeout(this.eraseTimer);
    this.eraseTimer = null;
    await this.locked(async () => {
      this.checkpoint();
      this.closed = true;
      this.db.close();
    }).catch((e) => {
      if ((e as StoreError).code !== "store-closed") throw e;
    });
  }
}
