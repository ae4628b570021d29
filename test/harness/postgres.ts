// A throwaway PostgreSQL cluster for tests: initdb + pg_ctl into a temp dir, run as the `postgres` OS user when we
// are root (PostgreSQL refuses to run as root), listening on 127.0.0.1 at a free port with its unix socket in the
// temp dir, trust auth for loopback only. Each test asks for its own database so suites never share state.
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";

export const PG_BIN = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin";

export interface PostgresServer {
  /** Connection string of the default `postgres` database. */
  url: string;
  port: number;
  /** The cluster's data directory (tables and WAL), for tests that inspect what lands on disk. */
  dataDir: string;
  /** Creates an empty database and returns its connection string. */
  newDatabase(): Promise<string>;
  /** Stops the server as a crash would (immediate: no checkpoint, connections cut), keeping its data. */
  down(): void;
  /** Starts it again on the same data and port. */
  up(): void;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") return reject(new Error("no port from listen(0)"));
      srv.close(() => resolve(addr.port));
    });
  });
}

function pgUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  return { uid, gid };
}

function runAsPg(user: { uid: number; gid: number } | null, bin: string, args: string[]): void {
  const cmd = user ? "runuser" : join(PG_BIN, bin);
  const argv = user ? ["-u", "postgres", "--", join(PG_BIN, bin), ...args] : args;
  const r = spawnSync(cmd, argv, { encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(" ")} failed (${r.status}): ${r.stderr || r.stdout}`);
}

export async function startPostgres(): Promise<PostgresServer> {
  const user = pgUser();
  const dir = mkdtempSync(join(tmpdir(), "motr-pg-"));
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, "data");
  runAsPg(user, "initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]);
  const port = await freePort();
  const opts = [
    `-c listen_addresses=127.0.0.1`, `-p ${port}`, `-c unix_socket_directories=${dir}`,
    `-c shared_buffers=16MB`, `-c max_connections=60`,
  ].join(" ");
  runAsPg(user, "pg_ctl", ["-D", data, "-l", join(dir, "server.log"), "-w", "-t", "120", "-o", opts, "start"]);

  let stopped = false;
  const stopSync = () => {
    if (stopped) return;
    stopped = true;
    try {
      runAsPg(user, "pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  // If the test process dies before after() runs, do not leave a cluster behind.
  process.once("exit", stopSync);

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    dataDir: data,
    async newDatabase() {
      const name = `t_${randomBytes(6).toString("hex")}`;
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    down() {
      runAsPg(user, "pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
    },
    up() {
      runAsPg(user, "pg_ctl", ["-D", data, "-l", join(dir, "server.log"), "-w", "-t", "120", "-o", opts, "start"]);
    },
    async stop() {
      process.removeListener("exit", stopSync);
      stopSync();
    },
  };
}
