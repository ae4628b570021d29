// Argument checks shared by every engine, so that misuse fails the same way (code `invalid-argument`) whether
// the bridge runs on memory, SQLite or PostgreSQL, and nothing malformed is ever written.
import { OTR_POLICY_NAMES, StoreError, type FingerprintRecord, type OtrPolicyName, type UserNetwork } from "./types.js";

/** OTRv3 reserves tags below 0x100; tags are 32-bit unsigned on the wire. */
export const MIN_INSTANCE_TAG = 0x100;
export const MAX_INSTANCE_TAG = 0xffffffff;

const LONE_SURROGATE = /\p{Cs}/u;

export function invalid(message: string): StoreError {
  return new StoreError("invalid-argument", message);
}

export function checkId(name: string, v: unknown): string {
  if (typeof v !== "string" || v.length === 0) throw invalid(`${name} must be a non-empty string`);
  // NUL separates fields in the sealing associated data (an id containing it could alias another row's binding),
  // and PostgreSQL text cannot hold it.
  if (v.includes("\0")) throw invalid(`${name} must not contain NUL`);
  // A lone surrogate has no UTF-8 form: the engines would store U+FFFD and hand back a different id.
  if (LONE_SURROGATE.test(v)) throw invalid(`${name} must be well-formed Unicode`);
  return v;
}

export function checkPolicy(v: unknown, nullable: true): OtrPolicyName | null;
export function checkPolicy(v: unknown, nullable: boolean): OtrPolicyName | null {
  if (v === null && nullable) return null;
  if (typeof v !== "string" || !(OTR_POLICY_NAMES as readonly string[]).includes(v)) {
    throw invalid(`OTR policy must be one of ${OTR_POLICY_NAMES.join(", ")}${nullable ? " or null" : ""}`);
  }
  return v as OtrPolicyName;
}

export function checkTime(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw invalid(`${name} must be a non-negative integer (ms)`);
  return v;
}

export function checkInstanceTag(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < MIN_INSTANCE_TAG || v > MAX_INSTANCE_TAG) {
    throw invalid("instance tag must be an integer in [0x100, 0xffffffff]");
  }
  return v;
}

/** Accepts libotr's human form ("AAAAAAAA BBBBBBBB ...") or plain hex; stores 40 lowercase hex digits. */
export function normalizeFingerprint(v: unknown): string {
  if (typeof v !== "string") throw invalid("fingerprint must be a string");
  const hex = v.replace(/\s+/g, "").toLowerCase();
  if (!/^[0-9a-f]{40}$/.test(hex)) throw invalid("fingerprint must be 40 hex digits");
  return hex;
}

export function checkKeyBytes(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length === 0) throw invalid("private key must be a non-empty Uint8Array");
  return v;
}

export function checkUserNetwork(u: UserNetwork): UserNetwork {
  if (u === null || typeof u !== "object") throw invalid("user network record must be an object");
  if (u.nick !== null) checkId("nick", u.nick);
  return {
    userId: checkId("userId", u.userId),
    networkId: checkId("networkId", u.networkId),
    nick: u.nick,
    otrPolicy: checkPolicy(u.otrPolicy, true),
    updatedAt: checkTime("updatedAt", u.updatedAt),
  };
}

export function checkFingerprintRecord(r: FingerprintRecord): FingerprintRecord {
  if (r === null || typeof r !== "object") throw invalid("fingerprint record must be an object");
  if (r.trust !== "unverified" && r.trust !== "verified") throw invalid("trust must be unverified or verified");
  if (r.verifiedBy !== null && r.verifiedBy !== "smp" && r.verifiedBy !== "manual") throw invalid("verifiedBy must be smp, manual or null");
  if (r.trust === "unverified" && r.verifiedBy !== null) throw invalid("an unverified fingerprint has no verifiedBy");
  if (r.trust === "verified" && r.verifiedBy === null) throw invalid("a verified fingerprint says how (verifiedBy)");
  const firstSeen = checkTime("firstSeen", r.firstSeen);
  const lastSeen = checkTime("lastSeen", r.lastSeen);
  return {
    userId: checkId("userId", r.userId),
    networkId: checkId("networkId", r.networkId),
    peerNick: checkId("peerNick", r.peerNick),
    fingerprint: normalizeFingerprint(r.fingerprint),
    trust: r.trust,
    verifiedBy: r.verifiedBy,
    firstSeen,
    lastSeen,
  };
}

export function checkPassword(v: unknown): string | null {
  if (v === null) return null;
  if (typeof v !== "string" || v.length === 0) throw invalid("password must be a non-empty string or null");
  if (LONE_SURROGATE.test(v)) throw invalid("password must be well-formed Unicode");
  return v;
}

/**
 * Longest channel key accepted, in UTF-8 bytes. Servers usually cap keys lower, but the cap differs per server and
 * the store cannot know it; 100 keeps any real key while bounding how much a key can grow a JOIN line.
 */
export const MAX_CHANNEL_KEY_BYTES = 100;

// Whitespace would split the key into two IRC parameters, a comma would split the JOIN key list (one key per
// channel), and CR, LF or NUL would end the line and let the rest be sent as a command of its own.
const CHANNEL_KEY_FORBIDDEN = /[\s,\p{Cc}]/u;

export function checkChannelKey(v: unknown): string | null {
  if (v === null) return null;
  if (typeof v !== "string" || v.length === 0) throw invalid("channel key must be a non-empty string or null");
  if (LONE_SURROGATE.test(v)) throw invalid("channel key must be well-formed Unicode");
  if (CHANNEL_KEY_FORBIDDEN.test(v)) throw invalid("channel key must not contain whitespace, a comma or control characters");
  if (Buffer.byteLength(v, "utf8") > MAX_CHANNEL_KEY_BYTES) throw invalid(`channel key must be at most ${MAX_CHANNEL_KEY_BYTES} bytes of UTF-8`);
  return v;
}

export function checkStateValue(v: unknown): string {
  if (typeof v !== "string") throw invalid("state value must be a string");
  // PostgreSQL text cannot hold NUL; refusing it everywhere keeps the engines alike.
  if (v.includes("\0")) throw invalid("state value must not contain NUL");
  if (LONE_SURROGATE.test(v)) throw invalid("state value must be well-formed Unicode");
  return v;
}

/**
 * Longest Matrix user id, in UTF-8 bytes: the spec's limit (appendices, "User Identifiers"), which comes from a user
 * id having to fit in the state key of an m.room.member event.
 */
export const MAX_MATRIX_USER_ID_BYTES = 255;
/**
 * Longest device id accepted, in UTF-8 bytes. The spec sets no limit; homeservers hand out ids of about ten
 * characters, and the bridge picks its own devices' ids, so 255 (the spec's bound for the other ids) is generous.
 */
export const MAX_DEVICE_ID_BYTES = 255;
/**
 * Largest crypto state accepted, in bytes (16 MiB). A device's serialized Olm/Megolm sessions and keys are a few
 * KB to ~100 KB; the bound is far above that, so a busy ghost never hits it, yet keeps one runaway blob from
 * filling the database (or the memory of a rotation, which opens one state at a time).
 */
export const MAX_CRYPTO_STATE_BYTES = 16 * 1024 * 1024;

// `@localpart:server`: the localpart cannot hold a colon (the first one ends it); no whitespace or control
// character anywhere. Looser than the spec's grammar for new ids (historical localparts exist), strict enough that
// a network id, a nick or a room id passed by mistake is refused instead of becoming the owner of a device.
const MATRIX_USER_ID = /^@[^:\s\p{Cc}]+:[^\s\p{Cc}]+$/u;

export function checkMatrixUserId(name: string, v: unknown): string {
  const id = checkId(name, v);
  if (!MATRIX_USER_ID.test(id)) throw invalid(`${name} must be a Matrix user id (@localpart:server)`);
  if (Buffer.byteLength(id, "utf8") > MAX_MATRIX_USER_ID_BYTES) throw invalid(`${name} must be at most ${MAX_MATRIX_USER_ID_BYTES} bytes of UTF-8`);
  return id;
}

export function checkDeviceId(v: unknown): string {
  const id = checkId("deviceId", v);
  if (Buffer.byteLength(id, "utf8") > MAX_DEVICE_ID_BYTES) throw invalid(`deviceId must be at most ${MAX_DEVICE_ID_BYTES} bytes of UTF-8`);
  return id;
}

/** An empty state is refused: no crypto library serializes a device to nothing, so it can only be a caller's bug. */
/** A saved OTR conversation is a few KB (at most 9 sessions of 4 key pairs); more is a caller bug. */
export const MAX_OTR_SESSION_BYTES = 64 * 1024;

export function checkOtrSession(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length === 0) throw invalid("OTR session state must be a non-empty Uint8Array");
  if (v.length > MAX_OTR_SESSION_BYTES) throw invalid(`OTR session state must be at most ${MAX_OTR_SESSION_BYTES} bytes`);
  return v;
}

export function checkCryptoState(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length === 0) throw invalid("crypto state must be a non-empty Uint8Array");
  if (v.length > MAX_CRYPTO_STATE_BYTES) throw invalid(`crypto state must be at most ${MAX_CRYPTO_STATE_BYTES} bytes (16 MiB)`);
  return v;
}

/** Matrix caps an event at 65 536 bytes of JSON (spec "Size limits"); a clear copy of one stays well below this. */
export const MAX_INBOX_EVENT_BYTES = 256 * 1024;
/** The spec's limit for event and room ids. */
const MAX_MATRIX_ID_BYTES = 255;

export function checkMatrixId(name: string, sigil: "$" | "!", v: unknown): string {
  const id = checkId(name, v);
  if (!id.startsWith(sigil) || /[\s\p{Cc}]/u.test(id)) throw invalid(`${name} must be a Matrix id starting with ${sigil}, without whitespace`);
  if (Buffer.byteLength(id, "utf8") > MAX_MATRIX_ID_BYTES) throw invalid(`${name} must be at most ${MAX_MATRIX_ID_BYTES} bytes of UTF-8`);
  return id;
}

export function checkTxnId(v: unknown): string {
  if (typeof v !== "string" || !/^[A-Za-z0-9._~-]{1,64}$/.test(v)) throw invalid("txnId must be 1-64 characters of [A-Za-z0-9._~-]");
  return v;
}

export function checkOutboxMessage(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length === 0) throw invalid("an outbox message must be a non-empty Uint8Array");
  if (v.length > MAX_INBOX_EVENT_BYTES) throw invalid(`an outbox message must be at most ${MAX_INBOX_EVENT_BYTES} bytes`);
  return v;
}

export function checkTimestamp(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw invalid(`${name} must be a non-negative integer (ms)`);
  return v;
}

export function checkSeqs(v: readonly unknown[]): number[] {
  return v.map((s) => {
    if (typeof s !== "number" || !Number.isSafeInteger(s) || s < 1) throw invalid("seq must be a positive integer");
    return s;
  });
}

export function checkInboxEvent(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length === 0) throw invalid("an inbox event must be a non-empty Uint8Array");
  if (v.length > MAX_INBOX_EVENT_BYTES) throw invalid(`an inbox event must be at most ${MAX_INBOX_EVENT_BYTES} bytes`);
  return v;
}
