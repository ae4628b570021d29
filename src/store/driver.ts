// The small SQL surface both engines share, so the Store logic (sql-store.ts) is written once. Statements use `?`
// placeholders; the PostgreSQL driver numbers them. Byte columns come back as Uint8Array, integers as number.
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
}

/** True when the error is a unique/primary-key violation in either engine. */
export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === "23505" || code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}
