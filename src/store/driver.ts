// The small SQL surface both engines share, so the Store logic (sql-store.ts) is written once. Statements use `?`
// placeholders; the PostgreSQL driver numbers them. Byte columns come back as Uint8Array, integers as number.
import { StoreError } from "./types.js";

export type Dialect = "sqlite" | "postgres";
export type SqlValue = string | number | Uint8Array | null;
export type Row = Record<string, unknown>;

export interface SqlQueries {
  readonly dialect: Dialect;
  all(sql: string, params?: readonly SqlValue[]): Promise<Row[]>;
  /** Returns the number of rows changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
}

/**
 * One statement of a batch: `all` answers its rows, `run` the number of rows changed. With `expect`, the batch
 * fails with BATCH_GUARD_FAILED and changes nothing unless the first column of the first row is those bytes.
 */
export interface BatchStep {
  op: "all" | "run";
  sql: string;
  params?: readonly SqlValue[];
  expect?: Uint8Array;
}
export type BatchResult = Row[] | number;

/** The code of the error a batch fails with when a guard step (`expect`) did not match. */
export const BATCH_GUARD_FAILED = "batch-guard-failed" as const;

export function guardHolds(rows: readonly Row[], expect: Uint8Array): boolean {
  const first = rows[0] ? Object.values(rows[0])[0] : undefined;
  if (!(first instanceof Uint8Array) || first.byteLength !== expect.byteLength) return false;
  for (let i = 0; i < expect.byteLength; i++) if (first[i] !== expect[i]) return false;
  return true;
}

export function guardFailed(): StoreError {
  return new StoreError(BATCH_GUARD_FAILED, "a batch's guard did not hold; nothing was written");
}

/** A batch statement by statement, for engines where a transaction's statements are not worth sending as one. */
export async function runSteps(q: SqlQueries, steps: readonly BatchStep[]): Promise<BatchResult[]> {
  const out: BatchResult[] = [];
  for (const s of steps) {
    if (s.op === "run") {
      out.push(await q.run(s.sql, s.params));
      continue;
    }
    const rows = await q.all(s.sql, s.params);
    if (s.expect && !guardHolds(rows, s.expect)) throw guardFailed();
    out.push(rows);
  }
  return out;
}

export interface SqlDriver extends SqlQueries {
  /**
   * Runs `fn` in one transaction that takes the write lock up front (SQLite BEGIN IMMEDIATE; PostgreSQL plus an
   * advisory lock when `exclusive`), commits when it resolves and rolls back when it throws.
   */
  tx<T>(fn: (q: SqlQueries) => Promise<T>, opts?: { exclusive?: boolean }): Promise<T>;
  /**
   * The steps in one transaction, in one trip to the engine: what the per-message writes (inbox, outbox, OTR
   * session) use, since a tx pays a round trip per statement. SQLite also commits the batches that queue up
   * meanwhile together (one fsync), each in a savepoint of its own, so one failing batch fails alone.
   */
  batch(steps: readonly BatchStep[]): Promise<BatchResult[]>;
  close(): Promise<void>;
  /**
   * Make what replaced or deleted rows held leave the database files soon (SQLite: a WAL checkpoint that
   * truncates the WAL; secure_delete already zeroes freed space in the main file). Absent where the engine
   * cannot promise it (PostgreSQL: see docs/store.md).
   */
  eraseSoon?(): void;
}

/** Engine errors leave the drivers as StoreErrors with a stable code; the engine's own error stays in `cause`. */
export function dbError(e: unknown): StoreError {
  if (e instanceof StoreError) return e;
  return new StoreError("database-error", `database error: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}

/** True when the error (or the engine error it wraps) is a unique/primary-key violation in either engine. */
export function isUniqueViolation(e: unknown): boolean {
  const inner = e instanceof StoreError ? e.cause : e;
  const code = (inner as { code?: unknown } | null)?.code;
  return code === "23505" || code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}
