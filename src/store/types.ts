// The persistence contract between the daemon and its storage engines (issue 5).
// Every engine (memory, SQLite, PostgreSQL) implements `Store` with the same observable behaviour; the shared
// suite in test/store/ holds them to it. Ids are plain strings: Matrix user ids, network ids from config,
// and nicks/channels already case-folded by the caller (the store never folds, so the IRC casemapping stays
// the IRC adapter's decision). Timestamps are milliseconds since the epoch. The crypto state of the bridge's own
// Matrix devices is an opaque blob to the store: it seals and binds it, and never looks inside.

/** OTR policy names as configured; `null` in a record means "use the configured default". */
export type OtrPolicyName = "never" | "manual" | "opportunistic" | "always";
export const OTR_POLICY_NAMES: readonly OtrPolicyName[] = ["never", "manual", "opportunistic", "always"];

/** Per (Matrix user, network) settings. */
export interface UserNetwork {
  userId: string;
  networkId: string;
  /** The nick the user asked for; null = derive from the nick template. */
  nick: string | null;
  otrPolicy: OtrPolicyName | null;
  updatedAt: number;
}

export type TrustLevel = "unverified" | "verified";
export type VerifiedBy = "smp" | "manual";

/** One fingerprint seen for a peer; a peer may have several (one per key they have used). */
export interface FingerprintRecord {
  userId: string;
  networkId: string;
  /** Case-folded IRC nick of the peer. */
  peerNick: string;
  /** 40 lowercase hex digits (SHA-1 of the peer's DSA public key). Upper case and spaces are normalised away. */
  fingerprint: string;
  trust: TrustLevel;
  /** How the fingerprint came to be verified; null while unverified. */
  verifiedBy: VerifiedBy | null;
  firstSeen: number;
  lastSeen: number;
}

export interface DmKey {
  userId: string;
  networkId: string;
  foldedNick: string;
}

export interface DmRoom extends DmKey {
  roomId: string;
}

export interface ChannelKey {
  networkId: string;
  foldedChannel: string;
}

export interface ChannelRoom extends ChannelKey {
  roomId: string;
}

/**
 * Store configuration, shaped like the `store` section of the YAML config (snake_case keys, as in the file).
 * Relative paths are resolved against the process working directory.
 */
export interface StoreConfig {
  engine: "sqlite" | "postgres";
  sqlite_path?: string;
  postgres_url?: string;
  /** File whose (trimmed) content is the connection string; used when postgres_url is absent. */
  postgres_url_file?: string;
  master_key_file?: string;
}

/** A Matrix event held until the bridge has handled it (docs/store.md "Matrix → IRC delivery"). */
export interface InboxEvent {
  eventId: string;
  roomId: string;
  /** Arrival order, increasing across restarts. */
  seq: number;
  /** The event as the Matrix side serialized it (sealed at rest; opaque to the store). */
  event: Uint8Array;
  receivedAt: number;
}

export interface InboxRecord {
  eventId: string;
  roomId: string;
  event: Uint8Array;
}

/** A message on its way to a Matrix room, kept while the homeserver does not take it (src/bridge/outbox.ts). */
export interface OutboxRecord {
  roomId: string;
  /** The transaction id the message is sent with, on every try, so the homeserver keeps it once. */
  txnId: string;
  /** The message as the bridge serialized it (sealed at rest; opaque to the store). */
  message: Uint8Array;
}

export interface OutboxEntry extends OutboxRecord {
  /** Order of recording, increasing across restarts. */
  seq: number;
  queuedAt: number;
}

export interface Store {
  close(): Promise<void>;

  getUserNetwork(userId: string, networkId: string): Promise<UserNetwork | null>;
  /** Insert or replace the settings row. The sealed IRC password, if any, is kept. */
  putUserNetwork(u: UserNetwork): Promise<void>;
  /** All per-network settings rows of one user, ordered by network id. */
  listUserNetworks(userId: string): Promise<UserNetwork[]>;

  /** IRC (server or SASL) password, sealed at rest. */
  getIrcPassword(userId: string, networkId: string): Promise<string | null>;
  /** null deletes the password. */
  setIrcPassword(userId: string, networkId: string, pw: string | null): Promise<void>;

  /** Long-term OTR private key (serialized by the caller), sealed at rest. */
  getOtrPrivateKey(userId: string, networkId: string): Promise<Uint8Array | null>;
  /**
   * Atomically stores `key` unless a key already exists for (user, network), and returns the key that is stored
   * (first writer wins). The returned key is durable when the promise resolves: use only the returned key.
   */
  putOtrPrivateKeyIfAbsent(userId: string, networkId: string, key: Uint8Array): Promise<Uint8Array>;

  getInstanceTag(userId: string, networkId: string): Promise<number | null>;
  /** Same first-writer-wins rule as the private key. Tags must be in [0x100, 0xffffffff] (OTRv3 §"Instance Tags"). */
  putInstanceTagIfAbsent(userId: string, networkId: string, tag: number): Promise<number>;

  /** Ordered by peer nick, then first seen, then fingerprint. */
  listFingerprints(userId: string, networkId: string): Promise<FingerprintRecord[]>;
  /** Insert or replace the record keyed by (user, network, peerNick, fingerprint). */
  putFingerprint(r: FingerprintRecord): Promise<void>;
  /** Deletes the fingerprint for every peer of (user, network), or only for `peerNick` when given. */
  deleteFingerprint(userId: string, networkId: string, fingerprint: string, peerNick?: string): Promise<void>;

  getDmRoom(userId: string, networkId: string, foldedNick: string): Promise<string | null>;
  /**
   * Maps (user, network, nick) to a room, replacing any previous room for that key. A room belongs to one DM:
   * mapping a room already used by another key fails with code `room-conflict` and changes nothing.
   */
  putDmRoom(userId: string, networkId: string, foldedNick: string, roomId: string): Promise<void>;
  deleteDmRoom(userId: string, networkId: string, foldedNick: string): Promise<void>;
  findDmByRoom(roomId: string): Promise<DmKey | null>;
  /** All DM rooms of one user (optionally one network), ordered by network then nick. */
  listDmRooms(userId: string, networkId?: string): Promise<DmRoom[]>;

  getManagementRoom(userId: string): Promise<string | null>;
  /** Replaces the user's management room. A room owned by another user fails with `room-conflict`. */
  putManagementRoom(userId: string, roomId: string): Promise<void>;
  findManagementRoomOwner(roomId: string): Promise<string | null>;

  getChannelRoom(networkId: string, foldedChannel: string): Promise<string | null>;
  /** Same one-room-one-key rule as DM rooms (`room-conflict`). */
  putChannelRoom(networkId: string, foldedChannel: string, roomId: string): Promise<void>;
  deleteChannelRoom(networkId: string, foldedChannel: string): Promise<void>;
  findChannelByRoom(roomId: string): Promise<ChannelKey | null>;
  /** Ordered by network then channel; all networks when networkId is omitted. */
  listChannelRooms(networkId?: string): Promise<ChannelRoom[]>;

  /** The key (IRC channel password) this user joins the channel with, sealed at rest; null when none is stored. */
  getChannelKey(userId: string, networkId: string, foldedChannel: string): Promise<string | null>;
  /**
   * null deletes it. Keys are per user (each Matrix user joins with their own puppet and may know a different key,
   * or none). A key must fit in one IRC parameter (`invalid-argument` otherwise): non-empty, at most
   * MAX_CHANNEL_KEY_BYTES of UTF-8, no whitespace, comma or control character.
   */
  setChannelKey(userId: string, networkId: string, foldedChannel: string, key: string | null): Promise<void>;

  /** Per-peer OTR policy override; null = none (use the user's or the configured default). */
  getPeerPolicy(userId: string, networkId: string, foldedNick: string): Promise<OtrPolicyName | null>;
  /** null removes the override. */
  putPeerPolicy(userId: string, networkId: string, foldedNick: string, policy: OtrPolicyName | null): Promise<void>;

  /**
   * The end-to-end crypto state of one of the bridge's own Matrix devices (the bot's or a ghost's), serialized by
   * the caller, sealed at rest and bound to the owner and device id. null when none is stored.
   */
  getCryptoState(ownerUserId: string, deviceId: string): Promise<Uint8Array | null>;
  /** Replaces the stored state; durable when the promise resolves (the caller acknowledges transactions after it). */
  putCryptoState(ownerUserId: string, deviceId: string, state: Uint8Array): Promise<void>;
  deleteCryptoState(ownerUserId: string, deviceId: string): Promise<void>;
  /** Owner and device ids of every stored crypto state, ordered by owner then device (no state is unsealed). */
  listCryptoDevices(): Promise<Array<{ ownerUserId: string; deviceId: string }>>;

  /**
   * The saved state of an established OTR conversation with one peer (src/otr/snapshot.ts, opaque here): sealed
   * and bound to (user, network, folded peer nick). It holds private DH keys, so replacing or deleting it also
   * erases the previous value from the database files where the engine allows (docs/store.md "OTR sessions").
   */
  getOtrSession(userId: string, networkId: string, foldedNick: string): Promise<Uint8Array | null>;
  /** Replaces the saved state; durable when the promise resolves (the caller sends only after that). */
  putOtrSession(userId: string, networkId: string, foldedNick: string, state: Uint8Array): Promise<void>;
  deleteOtrSession(userId: string, networkId: string, foldedNick: string): Promise<void>;

  /**
   * Records Matrix events before their transaction is acknowledged: all in one durable transaction, in the given
   * order. Returns, per event, true when it is new and false when the event id is already known (pending or
   * done): a redelivery, which the caller must not handle again.
   */
  inboxRecord(events: readonly InboxRecord[]): Promise<boolean[]>;
  /** Marks events handled: their bodies are deleted, their ids kept a while (bounded) to refuse redeliveries. */
  inboxDone(eventIds: readonly string[]): Promise<void>;
  /** Events recorded and not yet done, in arrival order. */
  inboxPending(): Promise<InboxEvent[]>;

  /**
   * Records messages for Matrix that the homeserver has not taken yet, in the given order, in one durable
   * transaction; returns their seq. `queuedAt` is when the bridge first had each (kept across restarts).
   */
  outboxAdd(records: ReadonlyArray<OutboxRecord & { queuedAt: number }>): Promise<number[]>;
  /** The homeserver took them (or they were given up): deleted, their bytes erased where the engine allows. */
  outboxDelete(seqs: readonly number[]): Promise<void>;
  /** Every message still to send, in recording order. */
  outboxPending(): Promise<OutboxEntry[]>;

  /** Small key/value state for whatever the bridge needs to resume (not for secrets: values are not sealed). */
  getState(key: string): Promise<string | null>;
  putState(key: string, value: string): Promise<void>;
  deleteState(key: string): Promise<void>;
}

/** Stable error codes of the store; `StoreError.code` is one of these. */
export type StoreErrorCode =
  | "invalid-argument" // caller misuse: bad tag range, bad fingerprint, unknown policy, ...
  | "room-conflict" // a room id already mapped to another key
  | "store-closed" // method called after close()
  | "master-key-missing" // sealed data exists but no master key was given (env and key file absent)
  | "master-key-malformed" // env var or key file does not hold 32 bytes in hex or base64
  | "master-key-wrong" // the key does not open the canary: another key sealed this database
  | "master-key-rotated" // the key was rotated by another process while this store was open: restart
  | "sealed-data-corrupt" // a sealed value failed authentication: tampered, swapped between rows, or truncated
  | "canary-missing" // sealed rows exist but the canary is gone: the database was edited, refuse to guess
  | "schema-too-new" // database written by a newer version of the bridge
  | "migration-failed"
  | "database-unavailable" // cannot open the SQLite file or connect to PostgreSQL
  | "batch-guard-failed" // a driver batch's guard step did not match; the store reports what it guarded instead
  | "database-error" // a statement failed in the engine (connection lost, disk full, lock timeout, ...); see `cause`
  | "config-invalid"; // store section unusable (unknown engine, no path/url)

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreError";
    this.code = code;
  }
}
