// What a stolen SQLite file reveals (issue 5): neither a private key nor an IRC password nor an IRC channel key
// nor a Matrix device's crypto state nor the canary's
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

/**
 * A crypto state shaped like a real one (JSON with base64 pickles, ~100 KB, then raw bytes), carrying a marker that
 * appears nowhere else, so a match can only be this state leaking.
 */
function cryptoState(): { state: Uint8Array; marker: string } {
  const marker = `olm-pickle-marker-${randomBytes(12).toString("hex")}`;
  const json = JSON.stringify({ marker, account: randomBytes(40_000).toString("base64"), sessions: [randomBytes(20_000).toString("base64")] });
  return { state: new Uint8Array(Buffer.concat([Buffer.from(json), randomBytes(30_000)])), marker };
}

function stateNeedles(state: Uint8Array, marker: string): [string, Buffer][] {
  const b = Buffer.from(state);
  const out: [string, Buffer][] = [
    ["crypto state marker utf8", Buffer.from(marker, "utf8")],
    ["crypto state marker utf16", Buffer.from(marker, "utf16le")],
    ["crypto state hex", Buffer.from(b.subarray(0, 40).toString("hex"))],
    ["crypto state hex of the raw tail", Buffer.from(b.subarray(b.length - 40).toString("hex"))],
    ["crypto state base64", Buffer.from(b.toString("base64").slice(0, 40))],
  ];
  // 12-byte windows spread over the whole state (every byte would be ~100,000 searches per file): catches the
  // state stored raw, in chunks, compressed by nothing, or only partly sealed.
  const step = Math.floor((b.length - 12) / 64);
  for (let i = 0; i + 12 <= b.length; i += step) out.push([`crypto state bytes [${i}..${i + 12})`, b.subarray(i, i + 12)]);
  return out;
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

it("the SQLite file and its WAL contain no private key, password, channel key, crypto state or canary plaintext", async () => {
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
  const { state, marker } = cryptoState();
  const replacedState = cryptoState();
  await s.putCryptoState("@irc_carol:example.org", "GHOSTDEVICE", replacedState.state);
  await s.putCryptoState("@irc_carol:example.org", "GHOSTDEVICE", state); // the first one is replaced in place
  await s.putCryptoState("@ircbot:example.org", "BOTDEVICE", state);
  await s.putDmRoom("@alice:example.org", "libera", "carol", room);

  const check = (when: string) => {
    const blobs = files(path);
    assert.ok(blobs.some((b) => b.includes(room)), `${when}: the unsealed room id is visible, so the search works`);
    assert.ok(blobs.some((b) => b.includes("GHOSTDEVICE")), `${when}: the unsealed device id is visible, so the search works`);
    for (const [what, needle] of [...needles(key, password, channelKey), ...stateNeedles(state, marker), ...stateNeedles(replacedState.state, replacedState.marker)]) {
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
  await t.putCryptoState("@irc_carol:example.org", "GHOSTDEVICE", new Uint8Array(randomBytes(5000)));
  await t.deleteCryptoState("@ircbot:example.org", "BOTDEVICE");
  await t.close();
  check("after replacing a password, a channel key and a crypto state, and deleting a channel key and a crypto state");
});

it("no file of the PostgreSQL cluster (tables, WAL) contains the private key, password, channel key, crypto state or canary plaintext", async () => {
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
  // ~100 KB: stored out of line (TOAST), so the search covers that path too.
  const { state, marker } = cryptoState();
  await s.putCryptoState("@irc_carol:example.org", "GHOSTDEVICE", state);
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
  assert.ok(blobs.some((b) => b.includes("GHOSTDEVICE")), "the unsealed device id is visible, so the search works");
  for (const [what, needle] of [...needles(key, password, channelKey), ...stateNeedles(state, marker)]) {
    for (const b of blobs) assert.equal(b.indexOf(needle), -1, `found ${what} in the cluster's files`);
  }
});

/** Every 16-byte window (step 8) of a sealed value: a leftover copy of any part of it shows. */
function windows(b: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i + 16 <= b.length; i += 8) out.push(Buffer.from(b.subarray(i, i + 16)));
  return out;
}

it("a replaced or deleted OTR session state leaves no trace in the SQLite file or its WAL, even sealed (secure_delete, WAL checkpoint)", async () => {
  const path = join(dir, "otr-sessions.db");
  const cfg: StoreConfig = { engine: "sqlite", sqlite_path: path };
  const s = await openStore(cfg, new Uint8Array(randomBytes(32)));
  const sealedOf = async (nick: string): Promise<Uint8Array> => {
    const { default: Database } = await import("better-sqlite3");
    const db = new Database(path, { readonly: true });
    try {
      return (db.prepare("SELECT sealed FROM otr_sessions WHERE nick = ?").get(nick) as { sealed: Uint8Array }).sealed;
    } finally { db.close(); }
  };
  // Sealed, the old state is as good as the old keys to anyone who also has the master key: it must go.
  const carol: Uint8Array[] = [];
  for (let i = 0; i < 20; i++) {
    await s.putOtrSession("@alice:example.org", "libera", "carol", new Uint8Array(randomBytes(1500 + i)));
    carol.push(await sealedOf("carol"));
  }
  await s.putOtrSession("@alice:example.org", "libera", "dave", new Uint8Array(randomBytes(1500)));
  const dave = await sealedOf("dave");
  await s.deleteOtrSession("@alice:example.org", "libera", "dave");
  const current = carol.pop()!;
  const gone = [...carol, dave];
  // Within ERASE_DELAY_MS the store checkpoints; wait a little longer than that.
  await new Promise((r) => setTimeout(r, 600));
  const blobs = files(path);
  assert.ok(blobs.some((b) => windows(current).every((w) => b.includes(w))), "the current state is in the files, so the search works");
  let found = 0;
  for (const g of gone) for (const w of windows(g)) for (const b of blobs) if (b.includes(w)) found++;
  assert.equal(found, 0, "windows of replaced or deleted sealed states found in the database files");
  await s.close();
});
