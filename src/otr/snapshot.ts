// Saved conversation state: an established OTR conversation written out as bytes and read back, so a process
// that restarts (or crashed) goes on with the same keys instead of a new AKE. No OTR implementation does this,
// so the format is ours. What is kept, per session (spec v3 "Key Management", "Instance Tags"):
//   their instance tag, protocol version, message state (encrypted or finished), their fingerprint, the ssid;
//   for an encrypted session our key id and our two DH key pairs (x and gx), their key id and their two public
//   keys, every live (our keyid, their keyid) pair's keys and counters, and the MAC keys still to be revealed.
// What is not: SMP (its secrets are one exchange's; the caller is told an SMP was dropped), AKE in progress,
// held plaintext and fragments (never key material, and short-lived), timers (the clock is now on import).
//
// The counter rule: each pair stores its reserved high-water mark (data.ts SEND_COUNTER_RESERVE), never the last
// counter used, and import resumes sending above it. The caller saves whenever `dirty` is set, before it sends
// what the operation produced, so whatever was sent is covered by a saved reservation and no (key, counter)
// pair can repeat after a crash at any point.
//
// Decoding runs over stored bytes (sealed by the caller, so normally intact); any damage gives a code, never a
// throw, and a session is built only from a fully decoded and range-checked snapshot.
import { decodeWith, Writer, type Reader } from "./wire/codec.js";
import { bigIntToBytes, bytesToBigInt } from "./crypto/bigint.js";
import { isValidDhPublic, DH_P, type DhKeyPair } from "./crypto/dh.js";
import type { DataKeyState, PairKeys } from "./data.js";
import { Session } from "./session.js";
import { Smp } from "./smp.js";
import type { OtrEnv } from "./env.js";

/** Format version byte; bump when the layout changes (old bytes are then refused, not misread). */
export const SNAPSHOT_VERSION = 1;
const MAGIC = new Uint8Array([0x4f, 0x54, 0x52, 0x53]); // "OTRS"
const STATE_ENCRYPTED = 1;
const STATE_FINISHED = 2;
/** A conversation keeps at most MAX_PEER_INSTANCES children plus the master; more in a snapshot is damage. */
const MAX_SNAPSHOT_SESSIONS = 16;
const MAX_PAIRS = 4;
const MAX_OLD_MAC_KEYS = 64;

export type SnapshotErrorCode = "snapshot-malformed" | "snapshot-version" | "snapshot-other-account";

export interface SnapshotSession {
  theirInstance: number;
  version: 2 | 3;
  msgstate: "encrypted" | "finished";
  theirFingerprint: Uint8Array;
  ssid: Uint8Array;
  keys: DataKeyState | null;
  /** An SMP exchange was under way when the snapshot was taken (it is not kept). */
  smpActive: boolean;
}

export interface Snapshot {
  ourInstance: number;
  sessions: SnapshotSession[];
}

function writeKeyPair(w: Writer, k: DhKeyPair): void {
  w.mpi(k.x).mpi(k.gx);
}

function ctr8(n: bigint): Uint8Array {
  return bigIntToBytes(n, 8);
}

/** Sessions worth keeping: encrypted ones (with keys) and finished ones (so we never fall back to plaintext). */
export function encodeSnapshot(ourInstance: number, sessions: readonly Session[]): Uint8Array | null {
  const kept = sessions.filter((s) => (s.msgstate === "encrypted" && s.keys !== null) || s.msgstate === "finished");
  const usable = kept.filter((s) => s.version !== null && s.theirFingerprint !== null && s.ssid !== null);
  if (usable.length === 0) return null;
  const w = new Writer().bytes(MAGIC).byte(SNAPSHOT_VERSION).int(ourInstance).byte(usable.length);
  for (const s of usable) {
    w.int(s.theirInstance).byte(s.version!).byte(s.msgstate === "encrypted" ? STATE_ENCRYPTED : STATE_FINISHED);
    w.data(s.theirFingerprint!).data(s.ssid!);
    w.byte(s.smp !== null && s.smp.state !== "idle" ? 1 : 0);
    if (s.msgstate !== "encrypted") continue;
    const k = s.keys!;
    w.int(k.ourKeyId);
    writeKeyPair(w, k.ourPrev);
    w.byte(k.ourCur ? 1 : 0);
    if (k.ourCur) writeKeyPair(w, k.ourCur);
    w.int(k.theirKeyId).mpi(k.theirCur).byte(k.theirPrev !== null ? 1 : 0);
    if (k.theirPrev !== null) w.mpi(k.theirPrev);
    w.byte(k.pairs.size);
    for (const [id, p] of k.pairs) {
      const [o, t] = id.split(":").map(Number) as [number, number];
      w.int(o).int(t).data(p.sendAes).data(p.sendMac).data(p.recvAes).data(p.recvMac).data(p.extraKey);
      // The reservation, not the last counter used: see the header.
      w.bytes(ctr8(p.sendCtrReserved)).bytes(ctr8(p.recvCtr)).byte(p.recvMacUsed ? 1 : 0);
    }
    w.byte(k.oldMacKeys.length);
    for (const m of k.oldMacKeys) w.data(m);
  }
  return w.finish();
}

class Bad extends Error {
  constructor(readonly code: SnapshotErrorCode) {
    super(code);
  }
}

function check(ok: boolean): void {
  if (!ok) throw new Bad("snapshot-malformed");
}

function readKeyPair(r: Reader): DhKeyPair {
  const x = r.readMpi();
  const gx = r.readMpi();
  check(x >= 2n && x < DH_P && isValidDhPublic(gx));
  return { x, gx };
}

function readKey(r: Reader, len: number): Uint8Array {
  const b = r.readData();
  check(b.length === len);
  return b.slice();
}

function readSession(r: Reader): SnapshotSession {
  const theirInstance = r.readInt();
  const v = r.readByte();
  const st = r.readByte();
  check((v === 2 || v === 3) && (st === STATE_ENCRYPTED || st === STATE_FINISHED));
  const version = v as 2 | 3;
  check(version === 2 ? theirInstance === 0 : theirInstance >= 0x100);
  const theirFingerprint = readKey(r, 20);
  const ssid = readKey(r, 8);
  const smpActive = r.readByte() === 1;
  if (st === STATE_FINISHED) return { theirInstance, version, msgstate: "finished", theirFingerprint, ssid, keys: null, smpActive };
  const ourKeyId = r.readInt();
  check(ourKeyId >= 2);
  const ourPrev = readKeyPair(r);
  const ourCur = r.readByte() === 1 ? readKeyPair(r) : null;
  const theirKeyId = r.readInt();
  check(theirKeyId >= 1);
  const theirCur = r.readMpi();
  check(isValidDhPublic(theirCur));
  const theirPrev = r.readByte() === 1 ? r.readMpi() : null;
  check(theirPrev === null || isValidDhPublic(theirPrev));
  const nPairs = r.readByte();
  check(nPairs <= MAX_PAIRS);
  const pairs = new Map<string, PairKeys>();
  for (let i = 0; i < nPairs; i++) {
    const o = r.readInt();
    const t = r.readInt();
    // Only the pairs of the live keys: ours (ourKeyId - 1, ourKeyId) and theirs (theirKeyId - 1, theirKeyId).
    check((o === ourKeyId || o === ourKeyId - 1) && (t === theirKeyId || t === theirKeyId - 1));
    const sendAes = readKey(r, 16), sendMac = readKey(r, 20), recvAes = readKey(r, 16), recvMac = readKey(r, 20), extraKey = readKey(r, 32);
    const reserved = bytesToBigInt(r.readBytes(8, "CTR"));
    const recvCtr = bytesToBigInt(r.readBytes(8, "CTR"));
    const recvMacUsed = r.readByte() === 1;
    // Resume above the reservation: every counter up to it may have been used before the crash.
    pairs.set(`${o}:${t}`, { sendAes, sendMac, recvAes, recvMac, extraKey, sendCtr: reserved, sendCtrReserved: reserved, recvCtr, recvMacUsed });
  }
  const nOld = r.readByte();
  check(nOld <= MAX_OLD_MAC_KEYS);
  const oldMacKeys: Uint8Array[] = [];
  for (let i = 0; i < nOld; i++) oldMacKeys.push(readKey(r, 20));
  const keys: DataKeyState = { ourKeyId, ourPrev, ourCur, theirKeyId, theirCur, theirPrev, pairs, oldMacKeys, dirty: false };
  return { theirInstance, version, msgstate: "encrypted", theirFingerprint, ssid, keys, smpActive };
}

/** Parses and checks a snapshot; never throws. */
export function decodeSnapshot(bytes: Uint8Array): { ok: true; snapshot: Snapshot } | { ok: false; code: SnapshotErrorCode } {
  if (!(bytes instanceof Uint8Array) || bytes.length < MAGIC.length + 1) return { ok: false, code: "snapshot-malformed" };
  if (!MAGIC.every((b, i) => bytes[i] === b)) return { ok: false, code: "snapshot-malformed" };
  if (bytes[MAGIC.length] !== SNAPSHOT_VERSION) return { ok: false, code: "snapshot-version" };
  let code: SnapshotErrorCode = "snapshot-malformed";
  const r = decodeWith(bytes, (rd) => {
    try {
      rd.readBytes(MAGIC.length + 1);
      const ourInstance = rd.readInt();
      const n = rd.readByte();
      check(n >= 1 && n <= MAX_SNAPSHOT_SESSIONS);
      const sessions: SnapshotSession[] = [];
      const seen = new Set<number>();
      for (let i = 0; i < n; i++) {
        const s = readSession(rd);
        check(!seen.has(s.theirInstance));
        seen.add(s.theirInstance);
        sessions.push(s);
      }
      return { ourInstance, sessions };
    } catch (e) {
      if (e instanceof Bad) code = e.code;
      throw e;
    }
  });
  return r.ok ? { ok: true, snapshot: r.value } : { ok: false, code };
}

/** A live session from a decoded snapshot session; its clock starts now and SMP starts idle. */
export function sessionFromSnapshot(s: SnapshotSession, env: OtrEnv): Session {
  const out = new Session(s.theirInstance);
  out.msgstate = s.msgstate;
  out.version = s.version;
  out.keys = s.keys;
  out.theirFingerprint = s.theirFingerprint;
  out.ssid = s.ssid;
  out.smp = s.msgstate === "encrypted" ? new Smp(env) : null;
  out.lastSent = env.now();
  out.lastRecv = env.now();
  return out;
}
