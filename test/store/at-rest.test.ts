// What a stolen SQLite file reveals (issue 5): neither a private key nor an IRC password nor an IRC channel key
// nor the canary's
// plaintext appears in the database file or its WAL, in any encoding we could think of, while ordinary
// (unsealed) data such as room ids does — which shows the search itself works. The same holds for every file of
// a PostgreSQL cluster (tables and WAL).
import { after, before, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { openStore } from "../../src/store/index.js";
import { CANARY_PLAINTEXT } from "../../src/store/seal.js";
import type { StoreConfig } from "../../src/store/types.js";

import pg from "pg";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";

const dir = mkdtempSync(join(tmpdir(), "motr-atrest-"));
let server: PostgresServer | undefined;
before(async () => { server = await startPostgres(); });
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function files(path: string): Buffer[] {
  return [path, `${path}-wal`, `${path}-shm`, `${path}-journal`].filter(existsSync).map((p) => readFileSync(p));
}

function needles(key: Uint8Array, password: string, channelKey: string): [string, Buffer][] {
  const k = Buffer.from(key);
  const out: [string, Buffer][] = [
    ["key hex", Buffer.from(k.toString("hex"))],
    ["key HEX", Buffer.from(k.toString("hex").toUpperCase())],
    ["key base64", Buffer.from(k.toString("base64").slice(0, 40))],
    ["password utf8", Buffer.from(password, "utf8")],
    ["password utf16", Buffer.from(password, "utf16le")],
    ["channel key utf8", Buffer.from(channelKey, "utf8")],
    ["channel key utf16", Buffer.from(channelKey, "utf16le")],
    ["canary plaintext", Buffer.from(CANARY_PLAINTEXT)],
  ];
  // Any 12-byte window of the raw key: catches a key stored raw, split or with a prefix.
  for (let i = 0; i + 12 <= k.length; i += 6) out.push([`key bytes [${i}..${i + 12})`, k.subarray(i, i + 12)]);
  return out;
}

it("the SQLite file and its WAL contain no private key, password, channel key or canary plaintext", async () => {
  const path = join(dir, "bridge.db");
  const cfg: StoreConfig = { engine: "sqlite", sqlite_path: path };
  const masterKey = new Uint8Array(randomBytes(32));
  const key = new Uint8Array(randomBytes(600));
  const password = `correct-horse-${randomBytes(8).toString("hex")}`;
  const channelKey = `chan-key-${randomBytes(8).toString("hex")}`;
  const room = `!visible-${randomBytes(8).toString("hex")}:example.org`;

  const s = await openStore(cfg, masterKey);
  await s.putOtrPrivateKeyIfAbsent("@alice:example.org", "libera", key);
  await s.setIrcPassword("@alice:example.org", "libera", password);
  await s.setIrcPassword("@alice:example.org", "oftc", password);
  await s.setChannelKey("@alice:example.org", "libera", "#secret", channelKey);
  await s.setChannelKey("@bob:example.org", "libera", "#secret", channelKey);
  await s.putDmRoom("@alice:example.org", "libera", "carol", room);

  const check = (when: string) => {
    const blobs = files(path);
    assert.ok(blobs.some((b) => b.includes(room)), `${when}: the unsealed room id is visible, so the search works`);
    for (const [what, needle] of needles(key, password, channelKey)) {
      for (const b of blobs) assert.equal(b.indexOf(needle), -1, `${when}: found ${what} in the database files`);
    }
  };
  check("while open (data in the WAL)");
  for (const f of [path, `${path}-wal`]) assert.equal(statSync(f).mode & 0o077, 0, `${f} is private to the bridge's user`);
  await s.close();
  check("after close (checkpointed)");
  // A replaced password must not linger either.
  const t = await openStore(cfg, masterKey);
  await t.setIrcPassword("@alice:example.org", "libera", "something-else-entirely");
  await t.setChannelKey("@alice:example.org", "libera", "#secret", "another-channel-key");
  await t.setChannelKey("@bob:example.org", "libera", "#secret", null);
  await t.close();
  check("after replacing a password and a channel key, and deleting a channel key");
});

it("no file of the PostgreSQL cluster (tables, WAL) contains the private key, password, channel key or canary plaintext", async () => {
  const url = await server!.newDatabase();
  const masterKey = new Uint8Array(randomBytes(32));
  const key = new Uint8Array(randomBytes(600));
  const password = `correct-horse-${randomBytes(8).toString("hex")}`;
  const channelKey = `chan-key-${randomBytes(8).toString("hex")}`;
  const room = `!visible-${randomBytes(8).toString("hex")}:example.org`;
  const s = await openStore({ engine: "postgres", postgres_url: url }, masterKey);
  await s.putOtrPrivateKeyIfAbsent("@alice:example.org", "libera", key);
  await s.setIrcPassword("@alice:example.org", "libera", password);
  await s.setChannelKey("@alice:example.org", "libera", "#secret", channelKey);
  await s.putDmRoom("@alice:example.org", "libera", "carol", room);
  await s.close();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query("CHECKPOINT"); // table pages on disk, not only in shared buffers
  await c.end();

  const blobs = (readdirSync(server!.dataDir, { recursive: true }) as string[])
    .map((f) => join(server!.dataDir, f))
    .filter((f) => statSync(f).isFile())
    .map((f) => readFileSync(f));
  assert.ok(blobs.some((b) => b.includes(room)), "the unsealed room id is visible, so the search works");
  for (const [what, needle] of needles(key, password, channelKey)) {
    for (const b of blobs) assert.equal(b.indexOf(needle), -1, `found ${what} in the cluster's files`);
  }
});
