// Sealed secrets and the master key on both SQL engines: tampering, swapped rows, wrong or missing keys and
// rotation each fail with a stable code and leave the database byte-for-byte as it was. This is the SQL half of
// the store contract (suite.ts): the memory engine seals nothing, so these cases mean nothing there.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { openConfiguredStore, openStore, rotateMasterKey, rotateMasterKeyFile, MASTER_KEY_ENV } from "../../src/store/index.js";
import { formatMasterKey, writeMasterKeyFile } from "../../src/store/master-key.js";
import { Sealer } from "../../src/store/seal.js";
import type { StoreConfig } from "../../src/store/types.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";
import { dumpTables, rawAll, rawRun } from "./helpers.js";
import { rejectsCode } from "./suite.js";

const U1 = "@alice:example.org";
const U2 = "@bob:example.org";
const NET = "libera";
const dir = mkdtempSync(join(tmpdir(), "motr-sec-"));
let server: PostgresServer | undefined;
before(async () => { server = await startPostgres(); });
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const newKey = () => new Uint8Array(randomBytes(32));
const NO_ENV: NodeJS.ProcessEnv = {};

const BOT = "@ircbot:example.org";
const GHOST = "@irc_carol:example.org";

/** Fills a store with two users' secrets and three devices' crypto states; returns the key and state bytes used. */
async function seed(cfg: StoreConfig, key: Uint8Array): Promise<{ k1: Uint8Array; k2: Uint8Array; botState: Uint8Array; ghostA: Uint8Array; ghostB: Uint8Array }> {
  const s = await openStore(cfg, key);
  const k1 = new Uint8Array(randomBytes(64));
  const k2 = new Uint8Array(randomBytes(64));
  await s.putOtrPrivateKeyIfAbsent(U1, NET, k1);
  await s.putOtrPrivateKeyIfAbsent(U2, NET, k2);
  await s.setIrcPassword(U1, NET, "alice-password");
  await s.setIrcPassword(U2, NET, "bob-password");
  await s.setChannelKey(U1, NET, "#otr", "alice-otr-key");
  await s.setChannelKey(U1, NET, "#ops", "alice-ops-key");
  await s.setChannelKey(U2, NET, "#otr", "bob-otr-key");
  // The bot and a ghost both own a device "GHOSTA": the owner alone tells these two apart.
  const botState = new Uint8Array(randomBytes(3000));
  const ghostA = new Uint8Array(randomBytes(5000));
  const ghostB = new Uint8Array(randomBytes(200));
  await s.putCryptoState(BOT, "GHOSTA", botState);
  await s.putCryptoState(GHOST, "GHOSTA", ghostA);
  await s.putCryptoState(GHOST, "GHOSTB", ghostB);
  await s.putDmRoom(U1, NET, "carol", "!dm:x");
  await s.close();
  return { k1, k2, botState, ghostA, ghostB };
}

async function sealedState(cfg: StoreConfig, owner: string, device: string): Promise<Uint8Array> {
  return (await rawAll(cfg, "SELECT sealed FROM crypto_state WHERE owner_user_id = ? AND device_id = ?", [owner, device]))[0]!.sealed as Uint8Array;
}

function engines(): [string, () => Promise<StoreConfig>][] {
  let n = 0;
  return [
    ["sqlite", async () => {
      const d = join(dir, `s${++n}`);
      return { engine: "sqlite", sqlite_path: join(d, "bridge.db"), master_key_file: join(d, "master.key") };
    }],
    ["postgres", async () => ({ engine: "postgres", postgres_url: await server!.newDatabase(), master_key_file: join(dir, `p${++n}`, "master.key") })],
  ];
}

for (const [name, makeCfg] of engines()) {
  describe(`sealed secrets on ${name}`, () => {
    it("refuses a tampered private key or password (sealed-data-corrupt) and does not overwrite it", async () => {
      const cfg = await makeCfg();
      const key = newKey();
      await seed(cfg, key);
      const [row] = await rawAll(cfg, "SELECT sealed FROM otr_private_keys WHERE user_id = ?", [U1]);
      const sealed = (row!.sealed as Uint8Array).slice();
      sealed[sealed.length - 20]! ^= 0x40;
      await rawRun(cfg, "UPDATE otr_private_keys SET sealed = ? WHERE user_id = ?", [sealed, U1]);
      const pw = (await rawAll(cfg, "SELECT sealed FROM irc_passwords WHERE user_id = ?", [U1]))[0]!.sealed as Uint8Array;
      await rawRun(cfg, "UPDATE irc_passwords SET sealed = ? WHERE user_id = ?", [pw.subarray(0, pw.length - 1), U1]);
      const before = await dumpTables(cfg);
      const s = await openStore(cfg, key);
      await rejectsCode(s.getOtrPrivateKey(U1, NET), "sealed-data-corrupt");
      await rejectsCode(s.putOtrPrivateKeyIfAbsent(U1, NET, new Uint8Array([1, 2, 3])), "sealed-data-corrupt");
      await rejectsCode(s.getIrcPassword(U1, NET), "sealed-data-corrupt");
      assert.equal(await s.getIrcPassword(U2, NET), "bob-password", "other rows still open");
      await s.close();
      assert.equal(await dumpTables(cfg), before, "nothing was overwritten");
    });

    it("refuses a sealed value moved to another user's row or another column", async () => {
      const cfg = await makeCfg();
      const key = newKey();
      await seed(cfg, key);
      const k1 = (await rawAll(cfg, "SELECT sealed FROM otr_private_keys WHERE user_id = ?", [U1]))[0]!.sealed as Uint8Array;
      const k2 = (await rawAll(cfg, "SELECT sealed FROM otr_private_keys WHERE user_id = ?", [U2]))[0]!.sealed as Uint8Array;
      await rawRun(cfg, "UPDATE otr_private_keys SET sealed = ? WHERE user_id = ?", [k2, U1]);
      await rawRun(cfg, "UPDATE otr_private_keys SET sealed = ? WHERE user_id = ?", [k1, U2]);
      const p1 = (await rawAll(cfg, "SELECT sealed FROM irc_passwords WHERE user_id = ?", [U1]))[0]!.sealed as Uint8Array;
      await rawRun(cfg, "UPDATE irc_passwords SET sealed = ? WHERE user_id = ?", [p1, U2]);
      const before = await dumpTables(cfg);
      const s = await openStore(cfg, key);
      await rejectsCode(s.getOtrPrivateKey(U1, NET), "sealed-data-corrupt");
      await rejectsCode(s.getOtrPrivateKey(U2, NET), "sealed-data-corrupt");
      await rejectsCode(s.getIrcPassword(U2, NET), "sealed-data-corrupt");
      assert.equal(await s.getIrcPassword(U1, NET), "alice-password");
      await s.close();
      // A password ciphertext copied into the key column of the same row is refused too (kind is bound).
      await rawRun(cfg, "UPDATE otr_private_keys SET sealed = ? WHERE user_id = ?", [p1, U1]);
      const t = await openStore(cfg, key);
      await rejectsCode(t.getOtrPrivateKey(U1, NET), "sealed-data-corrupt");
      await t.close();
      assert.notEqual(await dumpTables(cfg), before); // only our own raw edit changed it
    });

    it("refuses a channel key moved to another user's row, another channel's row or another column", async () => {
      const cfg = await makeCfg();
      const key = newKey();
      await seed(cfg, key);
      const sealedKey = async (user: string, channel: string) =>
        (await rawAll(cfg, "SELECT sealed FROM channel_keys WHERE user_id = ? AND channel = ?", [user, channel]))[0]!.sealed as Uint8Array;
      const aliceOtr = await sealedKey(U1, "#otr");
      const aliceOps = await sealedKey(U1, "#ops");
      // Alice's key for #otr given to Bob for #otr (same channel, other user).
      await rawRun(cfg, "UPDATE channel_keys SET sealed = ? WHERE user_id = ? AND channel = ?", [aliceOtr, U2, "#otr"]);
      // Alice's key for #otr put in her row for #ops (same user, other channel).
      await rawRun(cfg, "UPDATE channel_keys SET sealed = ? WHERE user_id = ? AND channel = ?", [aliceOtr, U1, "#ops"]);
      const before = await dumpTables(cfg);
      const s = await openStore(cfg, key);
      await rejectsCode(s.getChannelKey(U2, NET, "#otr"), "sealed-data-corrupt");
      await rejectsCode(s.getChannelKey(U1, NET, "#ops"), "sealed-data-corrupt");
      assert.equal(await s.getChannelKey(U1, NET, "#otr"), "alice-otr-key", "the original row still opens");
      await s.close();
      assert.equal(await dumpTables(cfg), before, "a refused read changes nothing");

      // A whole row moved to another channel name (what a rename in the database would do) is refused too.
      await rawRun(cfg, "UPDATE channel_keys SET sealed = ? WHERE user_id = ? AND channel = ?", [aliceOps, U1, "#ops"]);
      await rawRun(cfg, "UPDATE channel_keys SET channel = ? WHERE user_id = ? AND channel = ?", ["#elsewhere", U1, "#ops"]);
      // An IRC password ciphertext of the same user and network copied into a channel key row (the kind is bound).
      const pw = (await rawAll(cfg, "SELECT sealed FROM irc_passwords WHERE user_id = ?", [U1]))[0]!.sealed as Uint8Array;
      await rawRun(cfg, "INSERT INTO channel_keys (user_id, network_id, channel, sealed) VALUES (?, ?, ?, ?)", [U1, NET, "#pw", pw]);
      // And a channel key ciphertext copied into the password column.
      await rawRun(cfg, "UPDATE irc_passwords SET sealed = ? WHERE user_id = ?", [aliceOtr, U2]);
      const t = await openStore(cfg, key);
      await rejectsCode(t.getChannelKey(U1, NET, "#elsewhere"), "sealed-data-corrupt");
      assert.equal(await t.getChannelKey(U1, NET, "#ops"), null);
      await rejectsCode(t.getChannelKey(U1, NET, "#pw"), "sealed-data-corrupt");
      await rejectsCode(t.getIrcPassword(U2, NET), "sealed-data-corrupt");
      assert.equal(await t.getIrcPassword(U1, NET), "alice-password");
      await t.close();
    });

    it("refuses a tampered or truncated crypto state (sealed-data-corrupt) and keeps it for a restore", async () => {
      const cfg = await makeCfg();
      const key = newKey();
      const { ghostB } = await seed(cfg, key);
      const flipped = (await sealedState(cfg, GHOST, "GHOSTA")).slice();
      flipped[flipped.length - 100]! ^= 0x01;
      await rawRun(cfg, "UPDATE crypto_state SET sealed = ? WHERE owner_user_id = ? AND device_id = ?", [flipped, GHOST, "GHOSTA"]);
      const whole = await sealedState(cfg, BOT, "GHOSTA");
      await rawRun(cfg, "UPDATE crypto_state SET sealed = ? WHERE owner_user_id = ? AND device_id = ?", [whole.subarray(0, whole.length - 1), BOT, "GHOSTA"]);
      const before = await dumpTables(cfg);
      const s = await openStore(cfg, key);
      await rejectsCode(s.getCryptoState(GHOST, "GHOSTA"), "sealed-data-corrupt");
      await rejectsCode(s.getCryptoState(BOT, "GHOSTA"), "sealed-data-corrupt");
      assert.deepEqual(await s.getCryptoState(GHOST, "GHOSTB"), ghostB, "other devices still open");
      assert.equal((await s.listCryptoDevices()).length, 3, "listing opens nothing, so it does not fail on a corrupt state");
      await s.close();
      assert.equal(await dumpTables(cfg), before, "a refused read changes nothing");
    });

    it("refuses a crypto state moved to another device's row, another owner's row or another column", async () => {
      const cfg = await makeCfg();
      const key = newKey();
      const { ghostB } = await seed(cfg, key);
      const ghostA = await sealedState(cfg, GHOST, "GHOSTA");
      const ghostBSealed = await sealedState(cfg, GHOST, "GHOSTB");
      const bot = await sealedState(cfg, BOT, "GHOSTA");
      // Two devices of one owner swapped.
      await rawRun(cfg, "UPDATE crypto_state SET sealed = ? WHERE owner_user_id = ? AND device_id = ?", [ghostBSealed, GHOST, "GHOSTA"]);
      await rawRun(cfg, "UPDATE crypto_state SET sealed = ? WHERE owner_user_id = ? AND device_id = ?", [ghostA, GHOST, "GHOSTB"]);
      // The same device id under another owner: the ghost's sessions given to the bot.
      await rawRun(cfg, "UPDATE crypto_state SET sealed = ? WHERE owner_user_id = ? AND device_id = ?", [ghostA, BOT, "GHOSTA"]);
      const before = await dumpTables(cfg);
      const s = await openStore(cfg, key);
      await rejectsCode(s.getCryptoState(GHOST, "GHOSTA"), "sealed-data-corrupt");
      await rejectsCode(s.getCryptoState(GHOST, "GHOSTB"), "sealed-data-corrupt");
      await rejectsCode(s.getCryptoState(BOT, "GHOSTA"), "sealed-data-corrupt");
      await s.close();
      assert.equal(await dumpTables(cfg), before, "a refused read changes nothing");

      // Put back, then move whole rows: a device renamed, and a state re-assigned to another owner.
      await rawRun(cfg, "UPDATE crypto_state SET sealed = ? WHERE owner_user_id = ? AND device_id = ?", [ghostA, GHOST, "GHOSTA"]);
      await rawRun(cfg, "UPDATE crypto_state SET sealed = ? WHERE owner_user_id = ? AND device_id = ?", [ghostBSealed, GHOST, "GHOSTB"]);
      await rawRun(cfg, "UPDATE crypto_state SET sealed = ? WHERE owner_user_id = ? AND device_id = ?", [bot, BOT, "GHOSTA"]);
      const t = await openStore(cfg, key);
      assert.deepEqual(await t.getCryptoState(GHOST, "GHOSTB"), ghostB, "the original rows open again");
      await t.close();
      await rawRun(cfg, "UPDATE crypto_state SET device_id = ? WHERE owner_user_id = ? AND device_id = ?", ["RENAMED", GHOST, "GHOSTB"]);
      await rawRun(cfg, "UPDATE crypto_state SET owner_user_id = ? WHERE owner_user_id = ? AND device_id = ?", [U1, BOT, "GHOSTA"]);
      // A crypto state sealed for device "libera" has the binding an OTR key of (user, "libera") has: only the kind
      // tells them apart, in both directions.
      const u = await openStore(cfg, key);
      await u.putCryptoState(U2, NET, new Uint8Array(randomBytes(64)));
      await u.close();
      const stateAsKey = await sealedState(cfg, U2, NET);
      const keyAsState = (await rawAll(cfg, "SELECT sealed FROM otr_private_keys WHERE user_id = ?", [U1]))[0]!.sealed as Uint8Array;
      await rawRun(cfg, "UPDATE otr_private_keys SET sealed = ? WHERE user_id = ?", [stateAsKey, U2]);
      await rawRun(cfg, "INSERT INTO crypto_state (owner_user_id, device_id, sealed, updated_at) VALUES (?, ?, ?, ?)", [U1, NET, keyAsState, 1]);
      const w = await openStore(cfg, key);
      await rejectsCode(w.getCryptoState(GHOST, "RENAMED"), "sealed-data-corrupt");
      assert.equal(await w.getCryptoState(GHOST, "GHOSTB"), null);
      await rejectsCode(w.getCryptoState(U1, "GHOSTA"), "sealed-data-corrupt");
      assert.equal(await w.getCryptoState(BOT, "GHOSTA"), null);
      await rejectsCode(w.getOtrPrivateKey(U2, NET), "sealed-data-corrupt");
      await rejectsCode(w.getCryptoState(U1, NET), "sealed-data-corrupt");
      assert.equal((await w.getCryptoState(GHOST, "GHOSTA"))?.length, 5000, "untouched rows still open");
      await w.close();
    });

    it("an OTR session state is bound to (user, network, peer): a row moved to another peer, user or table is refused; rotation re-seals it", async () => {
      const cfg = await makeCfg();
      const key = newKey();
      await seed(cfg, key);
      const carol = new Uint8Array(randomBytes(1500));
      const dave = new Uint8Array(randomBytes(1400));
      let s = await openStore(cfg, key);
      await s.putOtrSession(U1, NET, "carol", carol);
      await s.putOtrSession(U1, NET, "dave", dave);
      await s.putOtrSession(U2, NET, "carol", dave);
      await s.close();
      const row = async (u: string, nick: string) => (await rawAll(cfg, "SELECT sealed FROM otr_sessions WHERE user_id = ? AND nick = ?", [u, nick]))[0]!.sealed as Uint8Array;
      const sealedCarol = await row(U1, "carol");
      assert.ok(!Buffer.from(sealedCarol).includes(Buffer.from(carol.subarray(0, 16))), "sealed, not stored as is");
      await rawRun(cfg, "UPDATE otr_sessions SET sealed = ? WHERE user_id = ? AND nick = ?", [sealedCarol, U1, "dave"]);
      await rawRun(cfg, "UPDATE otr_sessions SET sealed = ? WHERE user_id = ? AND nick = ?", [sealedCarol, U2, "carol"]);
      s = await openStore(cfg, key);
      await rejectsCode(s.getOtrSession(U1, NET, "dave"), "sealed-data-corrupt");
      await rejectsCode(s.getOtrSession(U2, NET, "carol"), "sealed-data-corrupt");
      assert.deepEqual(await s.getOtrSession(U1, NET, "carol"), carol);
      await s.deleteOtrSession(U1, NET, "dave");
      await s.deleteOtrSession(U2, NET, "carol");
      await s.close();
      await rawRun(cfg, "UPDATE crypto_state SET sealed = ? WHERE owner_user_id = ? AND device_id = ?", [sealedCarol, GHOST, "GHOSTB"]);
      s = await openStore(cfg, key);
      await rejectsCode(s.getCryptoState(GHOST, "GHOSTB"), "sealed-data-corrupt");
      await s.deleteCryptoState(GHOST, "GHOSTB");
      await s.close();
      const next = newKey();
      assert.deepEqual(await rotateMasterKey(cfg, key, next), { resealed: 10 }, "2 keys, 2 passwords, 3 channel keys, 2 crypto states, 1 OTR session");
      const old = new Sealer(key);
      const resealed = await row(U1, "carol");
      assert.throws(() => old.open("otr-session", [U1, NET, "carol"], resealed), { code: "sealed-data-corrupt" });
      s = await openStore(cfg, next);
      assert.deepEqual(await s.getOtrSession(U1, NET, "carol"), carol);
      await s.close();
    });

    it("refuses to open with a wrong master key (master-key-wrong) and changes nothing", async () => {
      const cfg = await makeCfg();
      await seed(cfg, newKey());
      const before = await dumpTables(cfg);
      await rejectsCode(openStore(cfg, newKey()), "master-key-wrong");
      await rejectsCode(openStore(cfg, new Uint8Array(16)), "master-key-malformed");
      assert.equal(await dumpTables(cfg), before);
    });

    it("refuses to open when sealed rows exist but the canary was deleted (canary-missing)", async () => {
      const cfg = await makeCfg();
      const key = newKey();
      await seed(cfg, key);
      await rawRun(cfg, "DELETE FROM meta");
      const before = await dumpTables(cfg);
      await rejectsCode(openStore(cfg, key), "canary-missing");
      assert.equal(await dumpTables(cfg), before);
    });

    it("creates the key file (0600) on first start, reuses it, and refuses when it goes missing", async () => {
      const cfg = await makeCfg();
      const first = await openConfiguredStore(cfg, NO_ENV);
      assert.equal(first.masterKeySource, "created");
      assert.equal(statSync(cfg.master_key_file!).mode & 0o777, 0o600);
      await first.store.putOtrPrivateKeyIfAbsent(U1, NET, new Uint8Array([7, 7, 7]));
      await first.store.close();
      const keyText = readFileSync(cfg.master_key_file!, "utf8");

      const second = await openConfiguredStore(cfg, NO_ENV);
      assert.equal(second.masterKeySource, "file");
      assert.deepEqual(await second.store.getOtrPrivateKey(U1, NET), new Uint8Array([7, 7, 7]));
      await second.store.close();

      rmSync(cfg.master_key_file!);
      const before = await dumpTables(cfg);
      await rejectsCode(openConfiguredStore(cfg, NO_ENV), "master-key-missing");
      assert.equal(existsSync(cfg.master_key_file!), false, "no new key was generated");
      assert.equal(await dumpTables(cfg), before);

      writeFileSync(cfg.master_key_file!, formatMasterKey(newKey()), { mode: 0o600 });
      await rejectsCode(openConfiguredStore(cfg, NO_ENV), "master-key-wrong");
      writeFileSync(cfg.master_key_file!, "not a key\n", { mode: 0o600 });
      await rejectsCode(openConfiguredStore(cfg, NO_ENV), "master-key-malformed");
      assert.equal(await dumpTables(cfg), before);

      // The right key from the environment (base64 here) wins over the broken file.
      const b64 = Buffer.from(keyText.trim(), "hex").toString("base64");
      const third = await openConfiguredStore(cfg, { [MASTER_KEY_ENV]: b64 });
      assert.equal(third.masterKeySource, "env");
      assert.deepEqual(await third.store.getOtrPrivateKey(U1, NET), new Uint8Array([7, 7, 7]));
      await third.store.close();
    });

    it("a database that only holds the canary still counts as sealed: a lost key file is refused", async () => {
      const cfg = await makeCfg();
      await (await openConfiguredStore(cfg, NO_ENV)).store.close();
      rmSync(cfg.master_key_file!);
      await rejectsCode(openConfiguredStore(cfg, NO_ENV), "master-key-missing");
    });

    it("channel keys alone count as sealed data: without the canary the store refuses to open or generate a key", async () => {
      const cfg = await makeCfg();
      const first = await openConfiguredStore(cfg, NO_ENV);
      await first.store.setChannelKey(U1, NET, "#otr", "only-secret");
      await first.store.close();
      const key = new Uint8Array(Buffer.from(readFileSync(cfg.master_key_file!, "utf8").trim(), "hex"));
      await rawRun(cfg, "DELETE FROM meta");
      const before = await dumpTables(cfg);
      await rejectsCode(openStore(cfg, key), "canary-missing");
      await rejectsCode(rotateMasterKey(cfg, key, newKey()), "canary-missing");
      rmSync(cfg.master_key_file!);
      await rejectsCode(openConfiguredStore(cfg, NO_ENV), "master-key-missing");
      assert.equal(existsSync(cfg.master_key_file!), false, "no new key was generated over the sealed channel key");
      assert.equal(await dumpTables(cfg), before);
    });

    it("crypto states alone count as sealed data: without the canary the store refuses to open or generate a key", async () => {
      const cfg = await makeCfg();
      const first = await openConfiguredStore(cfg, NO_ENV);
      await first.store.putCryptoState(BOT, "BOTDEVICE", new Uint8Array(randomBytes(100)));
      await first.store.close();
      const key = new Uint8Array(Buffer.from(readFileSync(cfg.master_key_file!, "utf8").trim(), "hex"));
      await rawRun(cfg, "DELETE FROM meta");
      const before = await dumpTables(cfg);
      await rejectsCode(openStore(cfg, key), "canary-missing");
      await rejectsCode(rotateMasterKey(cfg, key, newKey()), "canary-missing");
      rmSync(cfg.master_key_file!);
      await rejectsCode(openConfiguredStore(cfg, NO_ENV), "master-key-missing");
      assert.equal(existsSync(cfg.master_key_file!), false, "no new key was generated over the sealed crypto state");
      assert.equal(await dumpTables(cfg), before);
    });

    it("rotates the master key in one transaction: the old key stops working, every secret survives", async () => {
      const cfg = await makeCfg();
      const oldKey = newKey();
      const { k1, k2, botState, ghostA, ghostB } = await seed(cfg, oldKey);
      const before = await dumpTables(cfg);
      await rejectsCode(rotateMasterKey(cfg, newKey(), newKey()), "master-key-wrong");
      await rejectsCode(rotateMasterKey(cfg, oldKey, oldKey), "invalid-argument");
      assert.equal(await dumpTables(cfg), before, "a refused rotation changes nothing");

      const next = newKey();
      assert.deepEqual(await rotateMasterKey(cfg, oldKey, next), { resealed: 10 }, "2 private keys, 2 passwords, 3 channel keys, 3 crypto states");
      await rejectsCode(openStore(cfg, oldKey), "master-key-wrong");
      const s = await openStore(cfg, next);
      assert.deepEqual(await s.getOtrPrivateKey(U1, NET), k1);
      assert.deepEqual(await s.getOtrPrivateKey(U2, NET), k2);
      assert.equal(await s.getIrcPassword(U1, NET), "alice-password");
      assert.equal(await s.getIrcPassword(U2, NET), "bob-password");
      assert.equal(await s.getChannelKey(U1, NET, "#otr"), "alice-otr-key");
      assert.equal(await s.getChannelKey(U1, NET, "#ops"), "alice-ops-key");
      assert.equal(await s.getChannelKey(U2, NET, "#otr"), "bob-otr-key");
      assert.deepEqual(await s.getCryptoState(BOT, "GHOSTA"), botState);
      assert.deepEqual(await s.getCryptoState(GHOST, "GHOSTA"), ghostA);
      assert.deepEqual(await s.getCryptoState(GHOST, "GHOSTB"), ghostB);
      await s.close();
      // Every channel key row was re-sealed, not only readable through some fallback: the old key opens none of them.
      const old = new Sealer(oldKey);
      for (const r of await rawAll(cfg, "SELECT user_id, network_id, channel, sealed FROM channel_keys")) {
        assert.throws(() => old.open("channel-key", [String(r.user_id), String(r.network_id), String(r.channel)], r.sealed as Uint8Array), { code: "sealed-data-corrupt" });
      }
      // The same for every crypto state, while the new key opens each one under its own (owner, device).
      const fresh = new Sealer(next);
      const states = await rawAll(cfg, "SELECT owner_user_id, device_id, sealed FROM crypto_state");
      assert.equal(states.length, 3);
      for (const r of states) {
        const binding = [String(r.owner_user_id), String(r.device_id)];
        assert.throws(() => old.open("crypto-state", binding, r.sealed as Uint8Array), { code: "sealed-data-corrupt" });
        assert.ok(fresh.open("crypto-state", binding, r.sealed as Uint8Array).length > 0);
      }
    });

    it("a store left open across a rotation refuses to seal or open under the retired key (master-key-rotated)", async () => {
      const cfg = await makeCfg();
      const oldKey = newKey();
      const { k1 } = await seed(cfg, oldKey);
      const running = await openStore(cfg, oldKey);
      const next = newKey();
      await rotateMasterKey(cfg, oldKey, next);
      const after = await dumpTables(cfg);
      await rejectsCode(running.setIrcPassword(U1, NET, "typed-after-rotation"), "master-key-rotated");
      await rejectsCode(running.putOtrPrivateKeyIfAbsent("@carol:example.org", NET, new Uint8Array([1, 2, 3])), "master-key-rotated");
      await rejectsCode(running.getOtrPrivateKey(U1, NET), "master-key-rotated");
      await rejectsCode(running.getIrcPassword(U2, NET), "master-key-rotated");
      await rejectsCode(running.setChannelKey(U1, NET, "#new", "typed-after-rotation"), "master-key-rotated");
      await rejectsCode(running.getChannelKey(U1, NET, "#otr"), "master-key-rotated");
      await rejectsCode(running.putCryptoState(GHOST, "GHOSTA", new Uint8Array([9, 9, 9])), "master-key-rotated");
      await rejectsCode(running.putCryptoState(GHOST, "NEWDEVICE", new Uint8Array([9, 9, 9])), "master-key-rotated");
      await rejectsCode(running.getCryptoState(BOT, "GHOSTA"), "master-key-rotated");
      // The per-message writes check the canary inside their one-trip batch, not in a statement of their own.
      await rejectsCode(running.putOtrSession(U1, NET, "eve", new Uint8Array([4, 4, 4])), "master-key-rotated");
      await rejectsCode(running.inboxRecord([{ eventId: "$after-rotation", roomId: "!r:x", event: new Uint8Array([5]) }]), "master-key-rotated");
      await rejectsCode(running.outboxAdd([{ roomId: "!r:x", txnId: "after-rotation", message: new Uint8Array([6]), queuedAt: 1 }]), "master-key-rotated");
      assert.equal((await running.listCryptoDevices()).length, 3, "listing unseals nothing, so it still works");
      await running.putDmRoom(U1, NET, "dave", "!unsealed-still-fine:x"); // unsealed writes do not mix keys
      await running.close();
      assert.equal((await rawAll(cfg, "SELECT * FROM otr_private_keys WHERE user_id = ?", ["@carol:example.org"])).length, 0);
      assert.notEqual(await dumpTables(cfg), after);
      const s = await openStore(cfg, next);
      assert.deepEqual(await s.getOtrPrivateKey(U1, NET), k1);
      assert.equal(await s.getIrcPassword(U1, NET), "alice-password", "the refused write changed nothing");
      assert.equal(await s.getChannelKey(U1, NET, "#new"), null, "the refused channel key was not written");
      assert.equal((await s.getCryptoState(GHOST, "GHOSTA"))?.length, 5000, "the refused crypto state did not replace the stored one");
      assert.equal(await s.getCryptoState(GHOST, "NEWDEVICE"), null, "the refused crypto state was not written");
      assert.equal(await s.getOtrSession(U1, NET, "eve"), null, "the refused OTR session was not written");
      assert.deepEqual(await s.inboxPending(), [], "the refused inbox event was not recorded");
      assert.deepEqual(await s.outboxPending(), [], "the refused outbox message was not queued");
      await s.close();
    });

    it("a rotation that meets a corrupt row rolls back entirely", async () => {
      const cfg = await makeCfg();
      const oldKey = newKey();
      const { k1 } = await seed(cfg, oldKey);
      await rawRun(cfg, "UPDATE irc_passwords SET sealed = ? WHERE user_id = ?", [new Uint8Array(60).fill(1), U2]);
      const before = await dumpTables(cfg);
      await rejectsCode(rotateMasterKey(cfg, oldKey, newKey()), "sealed-data-corrupt");
      assert.equal(await dumpTables(cfg), before);
      const s = await openStore(cfg, oldKey);
      assert.deepEqual(await s.getOtrPrivateKey(U1, NET), k1);
      await s.close();
    });

    it("a rotation that meets a corrupt channel key rolls back entirely, keys and passwords included", async () => {
      const cfg = await makeCfg();
      const oldKey = newKey();
      const { k1 } = await seed(cfg, oldKey);
      // Channel keys are re-sealed last: every other secret has been rewritten inside the transaction by then.
      await rawRun(cfg, "UPDATE channel_keys SET sealed = ? WHERE user_id = ? AND channel = ?", [new Uint8Array(60).fill(1), U2, "#otr"]);
      const before = await dumpTables(cfg);
      await rejectsCode(rotateMasterKey(cfg, oldKey, newKey()), "sealed-data-corrupt");
      assert.equal(await dumpTables(cfg), before);
      const s = await openStore(cfg, oldKey);
      assert.deepEqual(await s.getOtrPrivateKey(U1, NET), k1);
      assert.equal(await s.getChannelKey(U1, NET, "#otr"), "alice-otr-key");
      await s.close();
    });

    it("a rotation that meets a corrupt crypto state rolls back entirely, every other secret included", async () => {
      const cfg = await makeCfg();
      const oldKey = newKey();
      const { k1, ghostA } = await seed(cfg, oldKey);
      // Crypto states are re-sealed last: every other secret, and any state listed before the corrupt one, has been
      // rewritten inside the transaction by then.
      await rawRun(cfg, "UPDATE crypto_state SET sealed = ? WHERE owner_user_id = ? AND device_id = ?", [new Uint8Array(80).fill(1), GHOST, "GHOSTB"]);
      const before = await dumpTables(cfg);
      await rejectsCode(rotateMasterKey(cfg, oldKey, newKey()), "sealed-data-corrupt");
      assert.equal(await dumpTables(cfg), before);
      const s = await openStore(cfg, oldKey);
      assert.deepEqual(await s.getOtrPrivateKey(U1, NET), k1);
      assert.equal(await s.getChannelKey(U1, NET, "#otr"), "alice-otr-key");
      assert.deepEqual(await s.getCryptoState(GHOST, "GHOSTA"), ghostA);
      await s.close();
    });

    it("rotateMasterKeyFile replaces the key file, and finishes a rotation interrupted before the rename", async () => {
      const cfg = await makeCfg();
      const created = await openConfiguredStore(cfg, NO_ENV);
      await created.store.setIrcPassword(U1, NET, "pw1");
      await created.store.setChannelKey(U1, NET, "#otr", "chan1");
      await created.store.putCryptoState(BOT, "BOTDEVICE", new Uint8Array([1, 2, 3, 4]));
      await created.store.close();
      const oldText = readFileSync(cfg.master_key_file!, "utf8");
      // The path behind `matrix-otr-irc store rotate-master-key`: channel keys and crypto states move to the new key
      // with the rest.
      assert.equal((await rotateMasterKeyFile(cfg, NO_ENV)).resealed, 3);
      assert.notEqual(readFileSync(cfg.master_key_file!, "utf8"), oldText);
      assert.equal(statSync(cfg.master_key_file!).mode & 0o777, 0o600);
      const s = await openConfiguredStore(cfg, NO_ENV);
      assert.equal(await s.store.getIrcPassword(U1, NET), "pw1");
      assert.equal(await s.store.getChannelKey(U1, NET, "#otr"), "chan1");
      assert.deepEqual(await s.store.getCryptoState(BOT, "BOTDEVICE"), new Uint8Array([1, 2, 3, 4]));
      await s.store.close();

      // Simulate a crash after re-sealing but before the rename: the DB is under the .new key.
      const current = Buffer.from(readFileSync(cfg.master_key_file!, "utf8").trim(), "hex");
      const pending = newKey();
      writeMasterKeyFile(`${cfg.master_key_file}.new`, pending, { exclusive: true });
      await rotateMasterKey(cfg, new Uint8Array(current), pending);
      await assert.rejects(openConfiguredStore(cfg, NO_ENV), /interrupted/);
      assert.equal((await rotateMasterKeyFile(cfg, NO_ENV)).resealed, 0);
      assert.equal(existsSync(`${cfg.master_key_file}.new`), false);
      const t = await openConfiguredStore(cfg, NO_ENV);
      assert.equal(await t.store.getIrcPassword(U1, NET), "pw1");
      await t.store.close();

      // A stale .new that never sealed anything is discarded and the rotation runs normally.
      writeMasterKeyFile(`${cfg.master_key_file}.new`, newKey(), { exclusive: true });
      assert.equal((await rotateMasterKeyFile(cfg, NO_ENV)).resealed, 3);
      const u = await openConfiguredStore(cfg, NO_ENV);
      assert.equal(await u.store.getIrcPassword(U1, NET), "pw1");
      assert.equal(await u.store.getChannelKey(U1, NET, "#otr"), "chan1");
      assert.deepEqual(await u.store.getCryptoState(BOT, "BOTDEVICE"), new Uint8Array([1, 2, 3, 4]));
      await u.store.close();
      await rejectsCode(rotateMasterKeyFile(cfg, { [MASTER_KEY_ENV]: formatMasterKey(newKey()) }), "invalid-argument");
    });
  });
}
