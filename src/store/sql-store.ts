// The Store over SQL, shared by the SQLite and PostgreSQL engines: one set of statements (portable SQL with
// INSERT ... ON CONFLICT), one sealing path, so both engines behave the same by construction. Private keys, IRC
// passwords, channel keys and Matrix crypto states are sealed before they reach the driver and opened after they
// come back (seal.ts).
import { BATCH_GUARD_FAILED, isUniqueViolation, type BatchResult, type BatchStep, type Row, type SqlDriver, type SqlQueries } from "./driver.js";
import { byKeys } from "./order.js";
import { CANARY_BINDING, CANARY_PLAINTEXT, Sealer } from "./seal.js";
import { LATEST_SCHEMA_VERSION } from "./migrations.js";
import { StoreError, type ChannelKey, type ChannelRoom, type DmKey, type DmRoom, type FingerprintRecord, type OtrPolicyName, type InboxEvent, type InboxRecord, type OutboxEntry, type OutboxRecord, type Store, type TrustLevel, type UserNetwork, type VerifiedBy } from "./types.js";
import * as v from "./validate.js";
import { markDone, pendingEvents, recordEvents, resealInbox } from "./inbox.js";
import { addMessages, deleteMessages, pendingMessages, resealOutbox } from "./outbox.js";

const CANARY_NAME = "master-key-canary";

function bytes(row: Row | undefined, col: string): Uint8Array | null {
  const val = row?.[col];
  return val instanceof Uint8Array ? val : null;
}

function num(val: unknown): number {
  return typeof val === "number" ? val : Number(val);
}

function str(val: unknown): string {
  return String(val);
}

/** Tables holding sealed values, with the schema version that created each. */
const SEALED_TABLES: readonly { table: string; since: number; where?: string }[] = [
  { table: "meta", since: 1 },
  { table: "otr_private_keys", since: 1 },
  { table: "irc_passwords", since: 1 },
  { table: "channel_keys", since: 2 },
  { table: "crypto_state", since: 3 },
  { table: "otr_sessions", since: 4 },
  // Done events keep only their id: they need no key.
  { table: "inbox_events", since: 5, where: "sealed IS NOT NULL" },
  { table: "outbox_messages", since: 6 },
];

/**
 * True when the database holds any sealed value (including the canary): then a master key must already exist.
 * `schemaVersion` is the database's version when it may not be migrated yet (the master-key lookup runs before
 * migrations): tables a newer migration creates do not exist there, and cannot hold anything.
 */
export async function holdsSealedData(q: SqlQueries, schemaVersion: number = LATEST_SCHEMA_VERSION): Promise<boolean> {
  for (const { table, since, where } of SEALED_TABLES) {
    if (since > schemaVersion) continue;
    if ((await q.all(`SELECT 1 FROM ${table}${where ? ` WHERE ${where}` : ""} LIMIT 1`)).length) return true;
  }
  return false;
}

/**
 * Verifies the master key against the canary, writing the canary on a database that holds no sealed data yet.
 * Refuses (`canary-missing`) when sealed rows exist without a canary: someone edited the database, and sealing new
 * rows under a possibly different key would mix keys in one database.
 */
export async function verifyOrPlantCanary(db: SqlDriver, sealer: Sealer): Promise<Uint8Array> {
  return db.tx(async (q) => {
    const row = (await q.all("SELECT value FROM meta WHERE name = ?", [CANARY_NAME]))[0];
    const sealed = bytes(row, "value");
    if (sealed) {
      openCanary(sealer, sealed);
      return sealed;
    }
    if (await holdsSealedData(q)) {
      throw new StoreError("canary-missing", "the database holds sealed secrets but its master-key canary is missing; refusing to guess which key sealed them");
    }
    // Two bridges planting at once: the loser's insert does nothing and it checks the winner's canary instead.
    await q.run("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", [CANARY_NAME, sealer.sealString("canary", CANARY_BINDING, CANARY_PLAINTEXT)]);
    const planted = bytes((await q.all("SELECT value FROM meta WHERE name = ?", [CANARY_NAME]))[0], "value")!;
    openCanary(sealer, planted);
    return planted;
  }, { exclusive: true });
}

function sameBytes(a: Uint8Array | null, b: Uint8Array): boolean {
  return a !== null && a.length === b.length && a.every((x, i) => x === b[i]);
}

function rotatedWhileOpen(): StoreError {
  return new StoreError(
    "master-key-rotated",
    "the master key was rotated while this bridge was running; restart it with the new key (nothing was written under the old one)",
  );
}

export function openCanary(sealer: Sealer, sealed: Uint8Array): void {
  let text: string;
  try {
    text = sealer.openString("canary", CANARY_BINDING, sealed);
  } catch (e) {
    throw new StoreError(
      "master-key-wrong",
      "the master key does not match this database (its canary does not open): the key file or MATRIX_OTR_IRC_MASTER_KEY " +
        "holds a different key than the one that sealed the secrets. Restore the right key; nothing was changed.",
      { cause: e },
    );
  }
  if (text !== CANARY_PLAINTEXT) throw new StoreError("master-key-wrong", "the master-key canary holds unexpected content");
}

/**
 * Re-seals every sealed value under `newSealer` in one transaction: either all rows move to the new key or none.
 * Returns the number of secrets re-sealed (the canary not counted).
 */
export async function resealAll(db: SqlDriver, oldSealer: Sealer, newSealer: Sealer): Promise<number> {
  return db.tx(async (q) => {
    const canary = bytes((await q.all("SELECT value FROM meta WHERE name = ?", [CANARY_NAME]))[0], "value");
    if (canary) openCanary(oldSealer, canary);
    else if (await holdsSealedData(q)) throw new StoreError("canary-missing", "sealed secrets exist without a master-key canary; refusing to rotate");
    let count = 0;
    for (const r of await q.all("SELECT user_id, network_id, sealed FROM otr_private_keys")) {
      const binding = [str(r.user_id), str(r.network_id)];
      const plain = oldSealer.open("otr-private-key", binding, bytes(r, "sealed")!);
      await q.run("UPDATE otr_private_keys SET sealed = ? WHERE user_id = ? AND network_id = ?", [newSealer.seal("otr-private-key", binding, plain), ...binding]);
      count++;
    }
    for (const r of await q.all("SELECT user_id, network_id, sealed FROM irc_passwords")) {
      const binding = [str(r.user_id), str(r.network_id)];
      const plain = oldSealer.open("irc-password", binding, bytes(r, "sealed")!);
      await q.run("UPDATE irc_passwords SET sealed = ? WHERE user_id = ? AND network_id = ?", [newSealer.seal("irc-password", binding, plain), ...binding]);
      count++;
    }
    for (const r of await q.all("SELECT user_id, network_id, channel, sealed FROM channel_keys")) {
      const binding = [str(r.user_id), str(r.network_id), str(r.channel)];
      const plain = oldSealer.open("channel-key", binding, bytes(r, "sealed")!);
      await q.run("UPDATE channel_keys SET sealed = ? WHERE user_id = ? AND network_id = ? AND channel = ?", [newSealer.seal("channel-key", binding, plain), ...binding]);
      count++;
    }
    // Crypto states are up to MAX_CRYPTO_STATE_BYTES each and there is one per ghost: list the keys, then load,
    // open and re-seal one state at a time, so a rotation never holds every device's sessions in memory at once.
    for (const d of await q.all("SELECT owner_user_id, device_id FROM crypto_state")) {
      const binding = [str(d.owner_user_id), str(d.device_id)];
      const sealed = bytes((await q.all("SELECT sealed FROM crypto_state WHERE owner_user_id = ? AND device_id = ?", binding))[0], "sealed")!;
      const plain = oldSealer.open("crypto-state", binding, sealed);
      await q.run("UPDATE crypto_state SET sealed = ? WHERE owner_user_id = ? AND device_id = ?", [newSealer.seal("crypto-state", binding, plain), ...binding]);
      count++;
    }
    for (const r of await q.all("SELECT user_id, network_id, nick, sealed FROM otr_sessions")) {
      const binding = [str(r.user_id), str(r.network_id), str(r.nick)];
      const plain = oldSealer.open("otr-session", binding, bytes(r, "sealed")!);
      await q.run("UPDATE otr_sessions SET sealed = ? WHERE user_id = ? AND network_id = ? AND nick = ?", [newSealer.seal("otr-session", binding, plain), ...binding]);
      count++;
    }
    count += await resealInbox(q, oldSealer, newSealer);
    count += await resealOutbox(q, oldSealer, newSealer);
    const newCanary = newSealer.sealString("canary", CANARY_BINDING, CANARY_PLAINTEXT);
    await q.run("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value", [CANARY_NAME, newCanary]);
    return count;
  }, { exclusive: true });
}

function toUserNetwork(r: Row): UserNetwork {
  return {
    userId: str(r.user_id),
    networkId: str(r.network_id),
    nick: r.nick === null ? null : str(r.nick),
    otrPolicy: r.otr_policy === null ? null : (str(r.otr_policy) as OtrPolicyName),
    updatedAt: num(r.updated_at),
  };
}

function toFingerprint(r: Row): FingerprintRecord {
  return {
    userId: str(r.user_id),
    networkId: str(r.network_id),
    peerNick: str(r.peer_nick),
    fingerprint: str(r.fingerprint),
    trust: str(r.trust) as TrustLevel,
    verifiedBy: r.verified_by === null ? null : (str(r.verified_by) as VerifiedBy),
    firstSeen: num(r.first_seen),
    lastSeen: num(r.last_seen),
  };
}

function roomConflict(what: string): StoreError {
  return new StoreError("room-conflict", `that room is already mapped to another ${what}`);
}

/**
 * Sealed writes run in a transaction that first checks the canary is still the one verified at open: a rotation
 * by `matrix-otr-irc store rotate-master-key` while this process runs would otherwise let it seal new secrets
 * under the retired key, mixing two keys in one database. A sealed read that fails is checked the same way, so
 * the operator sees `master-key-rotated` rather than a corruption report.
 */
export class SqlStore implements Store {
  constructor(private readonly db: SqlDriver, private readonly sealer: Sealer, private readonly canary: Uint8Array) {}

  private async assertCanary(q: SqlQueries): Promise<void> {
    const current = bytes((await q.all("SELECT value FROM meta WHERE name = ?", [CANARY_NAME]))[0], "value");
    if (!sameBytes(current, this.canary)) throw rotatedWhileOpen();
  }

  /** A sealed write as one batch: the canary check rides in it as a guard step instead of a round trip of its own. */
  private async sealedBatch(steps: readonly BatchStep[]): Promise<BatchResult[]> {
    try {
      const [, ...results] = await this.db.batch([{ op: "all", sql: "SELECT value FROM meta WHERE name = ?", params: [CANARY_NAME], expect: this.canary }, ...steps]);
      return results;
    } catch (e) {
      if (e instanceof StoreError && e.code === BATCH_GUARD_FAILED) throw rotatedWhileOpen();
      throw e;
    }
  }

  private async openSealed<T>(fn: () => T): Promise<T> {
    try {
      return fn();
    } catch (e) {
      if (e instanceof StoreError && e.code === "sealed-data-corrupt") await this.assertCanary(this.db);
      throw e;
    }
  }

  close(): Promise<void> {
    return this.db.close();
  }

  async getUserNetwork(userId: string, networkId: string): Promise<UserNetwork | null> {
    const rows = await this.db.all("SELECT * FROM user_networks WHERE user_id = ? AND network_id = ?", [v.checkId("userId", userId), v.checkId("networkId", networkId)]);
    return rows[0] ? toUserNetwork(rows[0]) : null;
  }

  async putUserNetwork(u: UserNetwork): Promise<void> {
    const c = v.checkUserNetwork(u);
    await this.db.run(
      `INSERT INTO user_networks (user_id, network_id, nick, otr_policy, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (user_id, network_id) DO UPDATE SET nick = excluded.nick, otr_policy = excluded.otr_policy, updated_at = excluded.updated_at`,
      [c.userId, c.networkId, c.nick, c.otrPolicy, c.updatedAt],
    );
  }

  async listUserNetworks(userId: string): Promise<UserNetwork[]> {
    const rows = await this.db.all("SELECT * FROM user_networks WHERE user_id = ?", [v.checkId("userId", userId)]);
    return rows.map(toUserNetwork).sort(byKeys("networkId"));
  }

  async getIrcPassword(userId: string, networkId: string): Promise<string | null> {
    const binding = [v.checkId("userId", userId), v.checkId("networkId", networkId)];
    const rows = await this.db.all("SELECT sealed FROM irc_passwords WHERE user_id = ? AND network_id = ?", binding);
    const sealed = bytes(rows[0], "sealed");
    return sealed ? this.openSealed(() => this.sealer.openString("irc-password", binding, sealed)) : null;
  }

  async setIrcPassword(userId: string, networkId: string, pw: string | null): Promise<void> {
    const binding = [v.checkId("userId", userId), v.checkId("networkId", networkId)];
    const p = v.checkPassword(pw);
    if (p === null) {
      await this.db.run("DELETE FROM irc_passwords WHERE user_id = ? AND network_id = ?", binding);
      return;
    }
    const sealed = this.sealer.sealString("irc-password", binding, p);
    await this.db.tx(async (q) => {
      await this.assertCanary(q);
      await q.run(
        "INSERT INTO irc_passwords (user_id, network_id, sealed) VALUES (?, ?, ?) ON CONFLICT (user_id, network_id) DO UPDATE SET sealed = excluded.sealed",
        [...binding, sealed],
      );
    });
  }

  async getOtrPrivateKey(userId: string, networkId: string): Promise<Uint8Array | null> {
    const binding = [v.checkId("userId", userId), v.checkId("networkId", networkId)];
    const rows = await this.db.all("SELECT sealed FROM otr_private_keys WHERE user_id = ? AND network_id = ?", binding);
    const sealed = bytes(rows[0], "sealed");
    return sealed ? this.openSealed(() => this.sealer.open("otr-private-key", binding, sealed)) : null;
  }

  async putOtrPrivateKeyIfAbsent(userId: string, networkId: string, key: Uint8Array): Promise<Uint8Array> {
    const binding = [v.checkId("userId", userId), v.checkId("networkId", networkId)];
    const plain = v.checkKeyBytes(key);
    // ON CONFLICT DO NOTHING waits for a concurrent inserter to commit, then the SELECT sees the winner's row:
    // first writer wins on both engines without an explicit lock, and the row is durable before we return it.
    const stored = await this.db.tx(async (q) => {
      await this.assertCanary(q);
      await q.run("INSERT INTO otr_private_keys (user_id, network_id, sealed, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (user_id, network_id) DO NOTHING", [
        ...binding,
        this.sealer.seal("otr-private-key", binding, plain),
        Date.now(),
      ]);
      const sealed = bytes((await q.all("SELECT sealed FROM otr_private_keys WHERE user_id = ? AND network_id = ?", binding))[0], "sealed");
      if (!sealed) throw new StoreError("sealed-data-corrupt", "the private key row vanished while it was being written");
      return sealed;
    });
    return this.openSealed(() => this.sealer.open("otr-private-key", binding, stored));
  }

  async getInstanceTag(userId: string, networkId: string): Promise<number | null> {
    const rows = await this.db.all("SELECT tag FROM instance_tags WHERE user_id = ? AND network_id = ?", [v.checkId("userId", userId), v.checkId("networkId", networkId)]);
    return rows[0] ? num(rows[0].tag) : null;
  }

  async putInstanceTagIfAbsent(userId: string, networkId: string, tag: number): Promise<number> {
    const ids = [v.checkId("userId", userId), v.checkId("networkId", networkId)];
    const t = v.checkInstanceTag(tag);
    return this.db.tx(async (q) => {
      await q.run("INSERT INTO instance_tags (user_id, network_id, tag) VALUES (?, ?, ?) ON CONFLICT (user_id, network_id) DO NOTHING", [...ids, t]);
      const rows = await q.all("SELECT tag FROM instance_tags WHERE user_id = ? AND network_id = ?", ids);
      return num(rows[0]!.tag);
    });
  }

  async listFingerprints(userId: string, networkId: string): Promise<FingerprintRecord[]> {
    const rows = await this.db.all("SELECT * FROM fingerprints WHERE user_id = ? AND network_id = ?", [v.checkId("userId", userId), v.checkId("networkId", networkId)]);
    return rows.map(toFingerprint).sort(byKeys("peerNick", "firstSeen", "fingerprint"));
  }

  async putFingerprint(r: FingerprintRecord): Promise<void> {
    const c = v.checkFingerprintRecord(r);
    await this.db.run(
      `INSERT INTO fingerprints (user_id, network_id, peer_nick, fingerprint, trust, verified_by, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (user_id, network_id, peer_nick, fingerprint) DO UPDATE SET trust = excluded.trust, verified_by = excluded.verified_by,
         first_seen = excluded.first_seen, last_seen = excluded.last_seen`,
      [c.userId, c.networkId, c.peerNick, c.fingerprint, c.trust, c.verifiedBy, c.firstSeen, c.lastSeen],
    );
  }

  async deleteFingerprint(userId: string, networkId: string, fingerprint: string, peerNick?: string): Promise<void> {
    const params = [v.checkId("userId", userId), v.checkId("networkId", networkId), v.normalizeFingerprint(fingerprint)];
    if (peerNick === undefined) {
      await this.db.run("DELETE FROM fingerprints WHERE user_id = ? AND network_id = ? AND fingerprint = ?", params);
    } else {
      await this.db.run("DELETE FROM fingerprints WHERE user_id = ? AND network_id = ? AND fingerprint = ? AND peer_nick = ?", [...params, v.checkId("peerNick", peerNick)]);
    }
  }

  async getDmRoom(userId: string, networkId: string, foldedNick: string): Promise<string | null> {
    const rows = await this.db.all("SELECT room_id FROM dm_rooms WHERE user_id = ? AND network_id = ? AND nick = ?", [
      v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick),
    ]);
    return rows[0] ? str(rows[0].room_id) : null;
  }

  async putDmRoom(userId: string, networkId: string, foldedNick: string, roomId: string): Promise<void> {
    const key = [v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick)];
    v.checkId("roomId", roomId);
    try {
      await this.db.tx(async (q) => {
        const owner = (await q.all("SELECT user_id, network_id, nick FROM dm_rooms WHERE room_id = ?", [roomId]))[0];
        if (owner && (owner.user_id !== key[0] || owner.network_id !== key[1] || owner.nick !== key[2])) throw roomConflict("DM");
        await q.run("INSERT INTO dm_rooms (user_id, network_id, nick, room_id) VALUES (?, ?, ?, ?) ON CONFLICT (user_id, network_id, nick) DO UPDATE SET room_id = excluded.room_id", [...key, roomId]);
      });
    } catch (e) {
      // A concurrent writer from another process can still win the race on PostgreSQL: the unique index decides.
      if (isUniqueViolation(e)) throw roomConflict("DM");
      throw e;
    }
  }

  async deleteDmRoom(userId: string, networkId: string, foldedNick: string): Promise<void> {
    await this.db.run("DELETE FROM dm_rooms WHERE user_id = ? AND network_id = ? AND nick = ?", [
      v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick),
    ]);
  }

  async findDmByRoom(roomId: string): Promise<DmKey | null> {
    const r = (await this.db.all("SELECT user_id, network_id, nick FROM dm_rooms WHERE room_id = ?", [v.checkId("roomId", roomId)]))[0];
    return r ? { userId: str(r.user_id), networkId: str(r.network_id), foldedNick: str(r.nick) } : null;
  }

  async listDmRooms(userId: string, networkId?: string): Promise<DmRoom[]> {
    const rows = networkId === undefined
      ? await this.db.all("SELECT * FROM dm_rooms WHERE user_id = ?", [v.checkId("userId", userId)])
      : await this.db.all("SELECT * FROM dm_rooms WHERE user_id = ? AND network_id = ?", [v.checkId("userId", userId), v.checkId("networkId", networkId)]);
    return rows
      .map((r) => ({ userId: str(r.user_id), networkId: str(r.network_id), foldedNick: str(r.nick), roomId: str(r.room_id) }))
      .sort(byKeys("networkId", "foldedNick"));
  }

  async getManagementRoom(userId: string): Promise<string | null> {
    const rows = await this.db.all("SELECT room_id FROM management_rooms WHERE user_id = ?", [v.checkId("userId", userId)]);
    return rows[0] ? str(rows[0].room_id) : null;
  }

  async putManagementRoom(userId: string, roomId: string): Promise<void> {
    v.checkId("userId", userId);
    v.checkId("roomId", roomId);
    try {
      await this.db.tx(async (q) => {
        const owner = (await q.all("SELECT user_id FROM management_rooms WHERE room_id = ?", [roomId]))[0];
        if (owner && owner.user_id !== userId) throw roomConflict("user's management room");
        await q.run("INSERT INTO management_rooms (user_id, room_id) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET room_id = excluded.room_id", [userId, roomId]);
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw roomConflict("user's management room");
      throw e;
    }
  }

  async findManagementRoomOwner(roomId: string): Promise<string | null> {
    const rows = await this.db.all("SELECT user_id FROM management_rooms WHERE room_id = ?", [v.checkId("roomId", roomId)]);
    return rows[0] ? str(rows[0].user_id) : null;
  }

  async getChannelRoom(networkId: string, foldedChannel: string): Promise<string | null> {
    const rows = await this.db.all("SELECT room_id FROM channel_rooms WHERE network_id = ? AND channel = ?", [v.checkId("networkId", networkId), v.checkId("foldedChannel", foldedChannel)]);
    return rows[0] ? str(rows[0].room_id) : null;
  }

  async putChannelRoom(networkId: string, foldedChannel: string, roomId: string): Promise<void> {
    const key = [v.checkId("networkId", networkId), v.checkId("foldedChannel", foldedChannel)];
    v.checkId("roomId", roomId);
    try {
      await this.db.tx(async (q) => {
        const owner = (await q.all("SELECT network_id, channel FROM channel_rooms WHERE room_id = ?", [roomId]))[0];
        if (owner && (owner.network_id !== key[0] || owner.channel !== key[1])) throw roomConflict("channel");
        await q.run("INSERT INTO channel_rooms (network_id, channel, room_id) VALUES (?, ?, ?) ON CONFLICT (network_id, channel) DO UPDATE SET room_id = excluded.room_id", [...key, roomId]);
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw roomConflict("channel");
      throw e;
    }
  }

  async deleteChannelRoom(networkId: string, foldedChannel: string): Promise<void> {
    await this.db.run("DELETE FROM channel_rooms WHERE network_id = ? AND channel = ?", [v.checkId("networkId", networkId), v.checkId("foldedChannel", foldedChannel)]);
  }

  async findChannelByRoom(roomId: string): Promise<ChannelKey | null> {
    const r = (await this.db.all("SELECT network_id, channel FROM channel_rooms WHERE room_id = ?", [v.checkId("roomId", roomId)]))[0];
    return r ? { networkId: str(r.network_id), foldedChannel: str(r.channel) } : null;
  }

  async listChannelRooms(networkId?: string): Promise<ChannelRoom[]> {
    const rows = networkId === undefined
      ? await this.db.all("SELECT * FROM channel_rooms")
      : await this.db.all("SELECT * FROM channel_rooms WHERE network_id = ?", [v.checkId("networkId", networkId)]);
    return rows
      .map((r) => ({ networkId: str(r.network_id), foldedChannel: str(r.channel), roomId: str(r.room_id) }))
      .sort(byKeys("networkId", "foldedChannel"));
  }

  async getChannelKey(userId: string, networkId: string, foldedChannel: string): Promise<string | null> {
    const binding = [v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedChannel", foldedChannel)];
    const rows = await this.db.all("SELECT sealed FROM channel_keys WHERE user_id = ? AND network_id = ? AND channel = ?", binding);
    const sealed = bytes(rows[0], "sealed");
    return sealed ? this.openSealed(() => this.sealer.openString("channel-key", binding, sealed)) : null;
  }

  async setChannelKey(userId: string, networkId: string, foldedChannel: string, key: string | null): Promise<void> {
    const binding = [v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedChannel", foldedChannel)];
    const k = v.checkChannelKey(key);
    if (k === null) {
      await this.db.run("DELETE FROM channel_keys WHERE user_id = ? AND network_id = ? AND channel = ?", binding);
      return;
    }
    const sealed = this.sealer.sealString("channel-key", binding, k);
    await this.db.tx(async (q) => {
      await this.assertCanary(q);
      await q.run(
        "INSERT INTO channel_keys (user_id, network_id, channel, sealed) VALUES (?, ?, ?, ?) ON CONFLICT (user_id, network_id, channel) DO UPDATE SET sealed = excluded.sealed",
        [...binding, sealed],
      );
    });
  }

  async getCryptoState(ownerUserId: string, deviceId: string): Promise<Uint8Array | null> {
    const binding = [v.checkMatrixUserId("ownerUserId", ownerUserId), v.checkDeviceId(deviceId)];
    const rows = await this.db.all("SELECT sealed FROM crypto_state WHERE owner_user_id = ? AND device_id = ?", binding);
    const sealed = bytes(rows[0], "sealed");
    return sealed ? this.openSealed(() => this.sealer.open("crypto-state", binding, sealed)) : null;
  }

  async putCryptoState(ownerUserId: string, deviceId: string, state: Uint8Array): Promise<void> {
    const binding = [v.checkMatrixUserId("ownerUserId", ownerUserId), v.checkDeviceId(deviceId)];
    // Sealed before the first await: the caller may reuse its buffer as soon as this call returns.
    const sealed = this.sealer.seal("crypto-state", binding, v.checkCryptoState(state));
    await this.db.tx(async (q) => {
      await this.assertCanary(q);
      await q.run(
        `INSERT INTO crypto_state (owner_user_id, device_id, sealed, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (owner_user_id, device_id) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at`,
        [...binding, sealed, Date.now()],
      );
    });
  }

  async deleteCryptoState(ownerUserId: string, deviceId: string): Promise<void> {
    await this.db.run("DELETE FROM crypto_state WHERE owner_user_id = ? AND device_id = ?", [v.checkMatrixUserId("ownerUserId", ownerUserId), v.checkDeviceId(deviceId)]);
  }

  async listCryptoDevices(): Promise<Array<{ ownerUserId: string; deviceId: string }>> {
    const rows = await this.db.all("SELECT owner_user_id, device_id FROM crypto_state");
    return rows.map((r) => ({ ownerUserId: str(r.owner_user_id), deviceId: str(r.device_id) })).sort(byKeys("ownerUserId", "deviceId"));
  }

  async getOtrSession(userId: string, networkId: string, foldedNick: string): Promise<Uint8Array | null> {
    const binding = [v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick)];
    const rows = await this.db.all("SELECT sealed FROM otr_sessions WHERE user_id = ? AND network_id = ? AND nick = ?", binding);
    const sealed = bytes(rows[0], "sealed");
    return sealed ? this.openSealed(() => this.sealer.open("otr-session", binding, sealed)) : null;
  }

  async putOtrSession(userId: string, networkId: string, foldedNick: string, state: Uint8Array): Promise<void> {
    const binding = [v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick)];
    const sealed = this.sealer.seal("otr-session", binding, v.checkOtrSession(state));
    await this.sealedBatch([{
      op: "run",
      sql: `INSERT INTO otr_sessions (user_id, network_id, nick, sealed, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (user_id, network_id, nick) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at`,
      params: [...binding, sealed, Date.now()],
    }]);
    // The previous state held DH keys OTR has now forgotten: get its bytes out of the files too.
    this.db.eraseSoon?.();
  }

  async deleteOtrSession(userId: string, networkId: string, foldedNick: string): Promise<void> {
    const binding = [v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick)];
    const n = await this.db.run("DELETE FROM otr_sessions WHERE user_id = ? AND network_id = ? AND nick = ?", binding);
    if (n > 0) this.db.eraseSoon?.();
  }

  inboxRecord(events: readonly InboxRecord[]): Promise<boolean[]> {
    return recordEvents(this.sealer, (steps) => this.sealedBatch(steps), events);
  }

  inboxDone(eventIds: readonly string[]): Promise<void> {
    return markDone(this.db, eventIds);
  }

  inboxPending(): Promise<InboxEvent[]> {
    return pendingEvents(this.db, (roomId, eventId, sealed) => this.openSealed(() => this.sealer.open("inbox-event", [roomId, eventId], sealed)));
  }

  outboxAdd(records: ReadonlyArray<OutboxRecord & { queuedAt: number }>): Promise<number[]> {
    return addMessages(this.sealer, (steps) => this.sealedBatch(steps), records);
  }

  outboxDelete(seqs: readonly number[]): Promise<void> {
    return deleteMessages(this.db, seqs);
  }

  outboxPending(): Promise<OutboxEntry[]> {
    return pendingMessages(this.db, (roomId, txnId, sealed) => this.openSealed(() => this.sealer.open("outbox-message", [roomId, txnId], sealed)));
  }

  async getPeerPolicy(userId: string, networkId: string, foldedNick: string): Promise<OtrPolicyName | null> {
    const rows = await this.db.all("SELECT policy FROM peer_policies WHERE user_id = ? AND network_id = ? AND nick = ?", [
      v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick),
    ]);
    return rows[0] ? (str(rows[0].policy) as OtrPolicyName) : null;
  }

  async putPeerPolicy(userId: string, networkId: string, foldedNick: string, policy: OtrPolicyName | null): Promise<void> {
    const key = [v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick)];
    const p = v.checkPolicy(policy, true);
    if (p === null) {
      await this.db.run("DELETE FROM peer_policies WHERE user_id = ? AND network_id = ? AND nick = ?", key);
    } else {
      await this.db.run("INSERT INTO peer_policies (user_id, network_id, nick, policy) VALUES (?, ?, ?, ?) ON CONFLICT (user_id, network_id, nick) DO UPDATE SET policy = excluded.policy", [...key, p]);
    }
  }

  async getState(key: string): Promise<string | null> {
    const rows = await this.db.all("SELECT value FROM kv_state WHERE name = ?", [v.checkId("key", key)]);
    return rows[0] ? str(rows[0].value) : null;
  }

  async putState(key: string, value: string): Promise<void> {
    await this.db.run("INSERT INTO kv_state (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value", [v.checkId("key", key), v.checkStateValue(value)]);
  }

  async deleteState(key: string): Promise<void> {
    await this.db.run("DELETE FROM kv_state WHERE name = ?", [v.checkId("key", key)]);
  }
}
