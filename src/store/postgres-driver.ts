// node-postgres behind the SqlDriver surface. A pool serves plain statements; a transaction holds one client.
// int8 columns are parsed to number (every integer we store — ms timestamps, 32-bit instance tags — is far below
// 2^53) so both engines hand back the same shapes.
import pg from "pg";
import { dbError, runSteps, type BatchResult, type BatchStep, type Row, type SqlDriver, type SqlQueries, type SqlValue } from "./driver.js";
import { StoreError } from "./types.js";

const INT8_OID = 20;
const BYTEA_OID = 17;
/** Serialises migrations and key rotation across bridge processes sharing one database. */
const ADVISORY_LOCK_ID = 0x6d6f7472; // "motr"

function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

function toParam(v: SqlValue): unknown {
  return v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v;
}

const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === INT8_OID) return (v: string) => Number(v);
    if (oid === BYTEA_OID) {
      const parse = pg.types.getTypeParser(oid, format ?? "text") as (v: string) => Buffer;
      return (v: string) => new Uint8Array(parse(v));
    }
    return pg.types.getTypeParser(oid, format ?? "text");
  },
};

function queries(client: pg.Pool | pg.PoolClient): SqlQueries {
  return {
    dialect: "postgres",
    all: async (sql, params = []) => {
      try {
        return (await client.query(numbered(sql), params.map(toParam))).rows as Row[];
      } catch (e) {
        throw dbError(e);
      }
    },
    run: async (sql, params = []) => {
      try {
        return (await client.query(numbered(sql), params.map(toParam))).rowCount ?? 0;
      } catch (e) {
        throw dbError(e);
      }
    },
  };
}

export class PostgresDriver implements SqlDriver {
  readonly dialect = "postgres" as const;
  private readonly pool: pg.Pool;
  private readonly direct: SqlQueries;
  private closed = false;

  constructor(connectionString: string) {
    this.pool = new pg.Pool({ connectionString, max: 8, types: types as unknown as pg.CustomTypesConfig });
    // An idle client losing its connection must not crash the process; the next query reports the problem.
    this.pool.on("error", () => undefined);
    this.direct = queries(this.pool);
  }

  private check(): void {
    if (this.closed) throw new StoreError("store-closed", "the store is closed");
  }

  all(sql: string, params?: readonly SqlValue[]): Promise<Row[]> {
    this.check();
    return this.direct.all(sql, params);
  }

  run(sql: string, params?: readonly SqlValue[]): Promise<number> {
    this.check();
    return this.direct.run(sql, params);
  }

  async tx<T>(fn: (q: SqlQueries) => Promise<T>, opts?: { exclusive?: boolean }): Promise<T> {
    this.check();
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw dbError(e);
    }
    let broken = false;
    try {
      const q = queries(client);
      await q.run("BEGIN");
      if (opts?.exclusive) await q.all("SELECT pg_advisory_xact_lock(?)", [ADVISORY_LOCK_ID]);
      const result = await fn(q);
      await q.run("COMMIT");
      return result;
    } catch (e) {
      try {
        await client.query("ROLLBACK");
      } catch {
        broken = true;
      }
      throw dbError(e);
    } finally {
      client.release(broken);
    }
  }

  batch(steps: readonly BatchStep[]): Promise<BatchResult[]> {
    return this.tx((q) => runSteps(q, steps));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
