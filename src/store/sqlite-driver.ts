// better-sqlite3 behind the async SqlDriver surface, in a worker thread of its own. better-sqlite3 is synchronous:
// on the main thread every commit's fsync (synchronous=FULL, below) and every WAL checkpoint stalled the event
// loop, so each store write delayed every bridged message of every user meanwhile (bench:e2ee: the replay records'
// batched write alone put Matrix->IRC p99 at 15 ms). The worker owns the connection and runs one request at a
// time, in order. A Store transaction awaits between statements, so every operation goes through one FIFO lock:
// no statement from another caller can slip into an open transaction. The lock is shared by every connection of this process to the same file: otherwise a
// second connection's synchronous BEGIN would block the event loop on SQLite's busy timeout while the first
// connection, unable to run, holds the write lock (a self-deadlock ending in SQLITE_BUSY).
//
// Durability: WAL with synchronous=FULL. A process crash (SIGKILL) loses nothing committed even with NORMAL, but
// NORMAL may drop the last commits on power loss, and the bridge hands a private key to the OTR engine as soon as
// putOtrPrivateKeyIfAbsent resolves; FULL makes "resolved" mean "on disk". Writes are rare, so the extra fsync per
// commit costs nothing that matters.
import { createRequire } from "node:module";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { Worker } from "node:worker_threads";
import { BATCH_GUARD_FAILED, dbError, guardFailed, type BatchResult, type BatchStep, type Row, type SqlDriver, type SqlQueries, type SqlValue } from "./driver.js";
import { StoreError } from "./types.js";

// An inline CommonJS script (no loader, no compiled file to find: the same under tsx and from dist/); the module
// path comes from here, so it resolves wherever the bridge runs from.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.module);
let db = null, openError = null;
const statements = new Map();
const prepare = (sql) => { let s = statements.get(sql); if (!s) { s = db.prepare(sql); statements.set(sql, s); } return s; };
const param = (v) => v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v;
try { db = new Database(workerData.path); } catch (e) { openError = e; }
const fault = (e) => ({ message: String((e && e.message) || e), code: e && e.code });
const step = (st) => {
  if (st.op === "run") return prepare(st.sql).run(...st.params.map(param)).changes;
  const rows = prepare(st.sql).all(...st.params.map(param));
  if (st.expect) {
    const v = rows[0] && Object.values(rows[0])[0];
    if (!Buffer.isBuffer(v) || !v.equals(Buffer.from(st.expect.buffer, st.expect.byteOffset, st.expect.byteLength))) {
      throw Object.assign(new Error("guard"), { code: workerData.guardCode });
    }
  }
  return rows;
};
// Every batch that queued while the previous request ran, in one transaction: one commit, one fsync. Each batch
// has a savepoint, so a failing one is rolled back alone and the others still commit.
const batches = (groups) => {
  db.exec("BEGIN IMMEDIATE");
  try {
    const answers = groups.map((steps) => {
      db.exec("SAVEPOINT batch");
      try {
        const r = steps.map(step);
        db.exec("RELEASE batch");
        return { r };
      } catch (e) {
        db.exec("ROLLBACK TO batch");
        db.exec("RELEASE batch");
        return { e: fault(e) };
      }
    });
    db.exec("COMMIT");
    return answers;
  } catch (e) {
    if (db.inTransaction) db.exec("ROLLBACK");
    throw e;
  }
};
parentPort.on("message", (m) => {
  try {
    if (openError) throw openError;
    let r = null;
    switch (m.op) {
      case "batches": r = batches(m.params); break;
      case "pragma": r = db.pragma(m.sql); break;
      case "exec": db.exec(m.sql); break;
      case "all": r = prepare(m.sql).all(...m.params.map(param)); break;
      case "run": r = prepare(m.sql).run(...m.params.map(param)).changes; break;
      case "rollback": if (db.inTransaction) db.exec("ROLLBACK"); break;
      case "close": db.close(); break;
    }
    parentPort.postMessage({ id: m.id, r });
  } catch (e) {
    parentPort.postMessage({ id: m.id, e: fault(e) });
  }
});
`;

const BETTER_SQLITE3 = createRequire(import.meta.url).resolve("better-sqlite3");

type Op = "pragma" | "exec" | "all" | "run" | "batches" | "rollback" | "close";

/** The error the worker sent back, with the engine's code (SQLITE_CONSTRAINT_UNIQUE...) where isUniqueViolation looks. */
class SqliteEngineError extends Error {
  constructor(message: string, readonly code: string | undefined) {
    super(message);
    this.name = "SqliteError";
  }
}

const fileMutexes = new Map<string, { tail: Promise<void> }>();

interface QueuedBatch {
  steps: Array<{ op: BatchStep["op"]; sql: string; params: readonly SqlValue[]; expect?: Uint8Array }>;
  resolve: (r: BatchResult[]) => void;
  reject: (e: Error) => void;
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
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private readonly mutex: { tail: Promise<void> };
  private closed = false;
  private eraseTimer: NodeJS.Timeout | null = null;
  private readonly queuedBatches: QueuedBatch[] = [];

  constructor(path: string) {
    if (path !== ":memory:") {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // Create the file ourselves so it is private from the start; SQLite gives the -wal and -shm files the
      // database file's permissions. What stays readable in it (ids, rooms, fingerprints) is not for other users.
      closeSync(openSync(path, "a", 0o600));
    }
    // execArgv [] keeps the parent's --import hooks (tsx) out of a worker that needs none of them.
    this.worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { module: BETTER_SQLITE3, path, guardCode: BATCH_GUARD_FAILED } });
    this.worker.unref(); // referenced only while a request is out (call): an idle store keeps no process alive
    this.worker.on("message", (m: { id: number; r?: unknown; e?: { message: string; code?: string } }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      if (m.e) p.reject(new SqliteEngineError(m.e.message, m.e.code));
      else p.resolve(m.r);
    });
    this.worker.on("error", (e) => this.failAll(e));
    this.worker.on("exit", () => this.failAll(new Error("the SQLite worker exited")));
    // Queued before any statement (the worker runs requests in order); a failure fails the first query, at open.
    // Other processes (the CLI during a key rotation) may hold the write lock briefly: wait rather than fail.
    for (const pragma of ["busy_timeout = 10000", "journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON",
      // Freed space in the main file is zeroed, so a replaced OTR session state (DH keys OTR has forgotten) does
      // not linger in a free page or cell. The WAL still holds old page images until a checkpoint: see eraseSoon.
      "secure_delete = ON"]) {
      this.call("pragma", pragma).catch(() => undefined);
    }
    if (path !== ":memory:") void this.checkpoint(); // what a crash left in the WAL
    let mutex = path === ":memory:" ? undefined : fileMutexes.get(path);
    if (!mutex) {
      mutex = { tail: Promise.resolve() };
      if (path !== ":memory:") fileMutexes.set(path, mutex);
    }
    this.mutex = mutex;
  }

  /** One request to the worker; resolves with its answer. */
  private call(op: Op, sql = "", params: readonly unknown[] = []): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, sql, params });
    });
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private direct: SqlQueries = {
    dialect: "sqlite",
    all: async (sql, params = []) => {
      try {
        return ((await this.call("all", sql, params)) as Row[]).map(fromRow);
      } catch (e) {
        throw dbError(e);
      }
    },
    run: async (sql, params = []) => {
      try {
        return (await this.call("run", sql, params)) as number;
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
        await this.call("exec", "BEGIN IMMEDIATE");
      } catch (e) {
        throw dbError(e);
      }
      try {
        const result = await fn(this.direct);
        await this.call("exec", "COMMIT");
        return result;
      } catch (e) {
        await this.call("rollback").catch(() => undefined);
        throw dbError(e);
      }
    });
  }

  batch(steps: readonly BatchStep[]): Promise<BatchResult[]> {
    return new Promise((resolve, reject) => {
      this.queuedBatches.push({ steps: steps.map((st) => ({ op: st.op, sql: st.sql, params: st.params ?? [], expect: st.expect })), resolve, reject });
      // The first batch of a group schedules the flush; the ones queued before it takes the lock ride along.
      if (this.queuedBatches.length > 1) return;
      this.locked(() => this.flushBatches()).catch((e: Error) => {
        for (const b of this.queuedBatches.splice(0)) b.reject(e); // the lock refused (closed): nothing was taken
      });
    });
  }

  private async flushBatches(): Promise<void> {
    const group = this.queuedBatches.splice(0);
    let answers: Array<{ r?: BatchResult[]; e?: { message: string; code?: string } }>;
    try {
      answers = (await this.call("batches", "", group.map((b) => b.steps))) as typeof answers;
    } catch (e) {
      for (const b of group) b.reject(dbError(e));
      return;
    }
    group.forEach((b, i) => {
      const a = answers[i]!;
      if (!a.e) b.resolve(a.r!.map((x) => (typeof x === "number" ? x : x.map(fromRow))));
      else if (a.e.code === BATCH_GUARD_FAILED) b.reject(guardFailed());
      else b.reject(dbError(new SqliteEngineError(a.e.message, a.e.code)));
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
      void this.locked(() => this.checkpoint()).catch(() => undefined);
    }, ERASE_DELAY_MS);
    this.eraseTimer.unref();
  }

  private async checkpoint(): Promise<void> {
    // Busy (another process reads): the next write tries again, and close() does too.
    await this.call("pragma", "wal_checkpoint(TRUNCATE)").catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.eraseTimer !== null) clearTimeout(this.eraseTimer);
    this.eraseTimer = null;
    await this.locked(async () => {
      await this.checkpoint();
      this.closed = true;
      await this.call("close").catch(() => undefined);
      await this.worker.terminate();
    }).catch((e) => {
      if ((e as StoreError).code !== "store-closed") throw e;
    });
  }
}
