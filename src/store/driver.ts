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

export interface SqlDriver extends SqlQueries {
  /**
   * Runs `fn` in one transaction that takes the write lock up front (SQLite BEGIN IMMEDIATE; PostgreSQL plus an
   * advisory lock when `exclusive`), commits when it resolves and rolls back when it throws.
   */
  tx<T>(fn: (q: SqlQueries) => Promise<T>, opts?: { exclusive?: boolean }): Promise<T>;
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
