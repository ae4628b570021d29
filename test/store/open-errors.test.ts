// Configuration and connection problems at open are StoreErrors with stable codes, not raw driver errors.
import { after, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { openConfiguredStore, openStore } from "../../src/store/index.js";
import type { StoreConfig } from "../../src/store/types.js";
import { rejectsCode } from "./suite.js";
import { startPostgres } from "../harness/postgres.js";

const dir = mkdtempSync(join(tmpdir(), "motr-open-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const key = new Uint8Array(randomBytes(32));

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

it("an unknown engine or a postgres section without a URL is config-invalid", async () => {
  await rejectsCode(openStore({ engine: "mysql" } as unknown as StoreConfig, key), "config-invalid");
  await rejectsCode(openStore({ engine: "postgres" }, key), "config-invalid");
  await rejectsCode(openStore({ engine: "postgres", postgres_url_file: join(dir, "absent") }, key), "config-invalid");
});

it("an unreachable PostgreSQL or an unusable SQLite path is database-unavailable", async () => {
  await rejectsCode(openStore({ engine: "postgres", postgres_url: `postgres://nobody@127.0.0.1:${await closedPort()}/x` }, key), "database-unavailable");
  const notADir = join(dir, "file");
  writeFileSync(notADir, "x");
  await rejectsCode(openStore({ engine: "sqlite", sqlite_path: join(notADir, "bridge.db") }, key), "database-unavailable");
  await rejectsCode(openConfiguredStore({ engine: "sqlite", sqlite_path: join(notADir, "bridge.db"), master_key_file: join(dir, "k") }, {}), "database-unavailable");
});

it("a file that is not a SQLite database is database-unavailable and left as it was", async () => {
  const path = join(dir, "junk.db");
  writeFileSync(path, "this is not a database, just some text long enough to look like a header........");
  await rejectsCode(openStore({ engine: "sqlite", sqlite_path: path }, key), "database-unavailable");
  assert.match(readFileSync(path, "utf8"), /^this is not a database/);
});

it("a statement failing after open (server gone) is database-error, with the engine's error as cause", async () => {
  const server = await startPostgres();
  try {
    const s = await openStore({ engine: "postgres", postgres_url: await server.newDatabase() }, key);
    await s.putState("k", "v");
    await server.stop();
    await rejectsCode(s.getState("k"), "database-error");
    await rejectsCode(s.putOtrPrivateKeyIfAbsent("@a:x", "n", new Uint8Array([1])), "database-error");
    await s.close();
  } finally {
    await server.stop();
  }
});
