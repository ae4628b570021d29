// Data-message key management (spec v3 "Key Management", "Exchanging data", "Revealing MAC keys").
// Holds our two most recent DH key pairs and their two most recent public keys, the per-pair session keys and
// counters, and the receiving MAC keys waiting to be revealed. Receiving is split in two: `openData` verifies
// (MAC first, then counter, then decrypt) and computes everything without touching the state; only the
// returned `commit` changes it. A forged message therefore cannot advance a counter or rotate a key
// (arlolra/otr stored the counter before checking the MAC, so one forgery blocked every genuine message).
import { aesCtr, constantTimeEqual, hmacSha1 } from "./crypto/primitives.js";
import { deriveDataKeys } from "./crypto/kdf.js";
import { dhSharedSecret, generateDhKeyPair, isValidDhPublic, type DhKeyPair } from "./crypto/dh.js";
import { bigIntToBytes, bytesToBigInt, concatBytes } from "./crypto/bigint.js";
import type { OtrEnv } from "./env.js";
import { CODE } from "./events.js";

/** Keys and counters of one (our key id, their key id) pair. */
export interface PairKeys {
  sendAes: Uint8Array;
  sendMac: Uint8Array;
  recvAes: Uint8Array;
  recvMac: Uint8Array;
  extraKey: Uint8Array;
  /** Top half of the last counter we sent with this pair (0 = none yet). */
  sendCtr: bigint;
  /**
   * High-water mark: the highest counter this pair may use before the state must be saved again. A saved state
   * carries this, not sendCtr, so a session restored after a crash starts strictly above every counter it may
   * have used (AES-CTR under a repeated (key, counter) pair leaks the XOR of two plaintexts).
   */
  sendCtrReserved: bigint;
  /** Top half of the highest counter accepted from the peer with this pair. */
  recvCtr: bigint;
  /** The receiving MAC key verified at least one message, so it must be revealed when the pair dies. */
  recvMacUsed: boolean;
}

export interface DataKeyState {
  /** Id of ourCur; ourPrev has ourKeyId - 1. */
  ourKeyId: number;
  ourPrev: DhKeyPair;
  /** Generated on first use (sending needs it as next_dh), which keeps the AKE itself one modexp cheaper. */
  ourCur: DhKeyPair | null;
  theirKeyId: number;
  theirCur: bigint;
  theirPrev: bigint | null;
  /** Keyed by `${ourId}:${theirId}`; at most the four live pairs. */
  pairs: Map<string, PairKeys>;
  /** Receiving MAC keys of forgotten pairs, revealed in the next data message we send. */
  oldMacKeys: Uint8Array[];
  /**
   * Something later traffic depends on changed since the caller last saved the state (snapshot.ts): a counter
   * reservation, a new key of ours that a message will announce, a received counter, a rotation.
   */
  dirty: boolean;
}

/** Counters reserved at a time: a saved state covers this many sends, so most sends need no write. */
export const SEND_COUNTER_RESERVE = 16n;

// Receiving only (never sending) lets this list grow; beyond the cap the oldest keys are simply not revealed,
// which costs some deniability for those messages and nothing else.
const MAX_OLD_MAC_KEYS = 64;
const MAX_KEY_ID = 0xffffffff;

const pairId = (ourId: number, theirId: number): string => `${ourId}:${theirId}`;

function makePair(our: DhKeyPair, theirPub: bigint, s?: bigint): PairKeys {
  const k = deriveDataKeys(our.gx, theirPub, s ?? dhSharedSecret(our.x, theirPub));
  return {
    sendAes: k.sendAes,
    sendMac: k.sendMac,
    recvAes: k.recvAes,
    recvMac: k.recvMac,
    extraKey: k.extraSymmetricKey,
    sendCtr: 0n,
    sendCtrReserved: 0n,
    recvCtr: 0n,
    recvMacUsed: false,
  };
}

/**
 * State right after the AKE: our AKE key is our_dh[1] (the spec's "previous", since the peer has acknowledged
 * it), our_dh[2] comes later; their AKE key with their keyid, no previous one. s is the AKE's shared secret, which
 * is exactly the secret of the first sending pair, so no extra modexp is needed.
 */
export function initialDataKeys(ourAkeKey: DhKeyPair, ourAkeKeyId: number, theirKeyId: number, theirPub: bigint, s: bigint): DataKeyState {
  const pairs = new Map<string, PairKeys>();
  pairs.set(pairId(ourAkeKeyId, theirKeyId), makePair(ourAkeKey, theirPub, s));
  return {
    ourKeyId: ourAkeKeyId + 1,
    ourPrev: ourAkeKey,
    ourCur: null,
    theirKeyId,
    theirCur: theirPub,
    theirPrev: null,
    pairs,
    oldMacKeys: [],
    dirty: true,
  };
}

/** The fields of a data message this module reads or fills in; the session does the wire framing. */
export interface DataFields {
  flags: number;
  senderKeyId: number;
  recipientKeyId: number;
  nextDh: bigint;
  ctr: Uint8Array; // 8 bytes
  encrypted: Uint8Array;
}

export interface SealResult {
  fields: DataFields;
  /** MAC over the framed message (from the protocol version to the end of the encrypted message). */
  mac: (macInput: Uint8Array) => Uint8Array;
  oldMacKeys: Uint8Array;
  extraKey: Uint8Array;
}

/**
 * Encrypt for sending (spec "When you send a Data Message"): sender keyid our_keyid-1, recipient keyid
 * their_keyid, next_dh our_dh[our_keyid], counter one above the last one used with this pair. Mutates the state
 * (counter, lazily generated keys, revealed MAC keys) since sending is our own decision.
 */
export function sealData(st: DataKeyState, plaintext: Uint8Array, flags: number, env: OtrEnv): SealResult {
  if (st.ourCur === null) {
    // Announced as next_dh in this very message: the peer will encrypt to it, so it must be saved first.
    st.ourCur = generateDhKeyPair(env);
    st.dirty = true;
  }
  const ourId = st.ourKeyId - 1;
  const id = pairId(ourId, st.theirKeyId);
  let pair = st.pairs.get(id);
  if (!pair) {
    pair = makePair(st.ourPrev, st.theirCur);
    st.pairs.set(id, pair);
  }
  pair.sendCtr += 1n;
  if (pair.sendCtr > pair.sendCtrReserved) {
    pair.sendCtrReserved = pair.sendCtr + SEND_COUNTER_RESERVE - 1n;
    st.dirty = true;
  }
  const ctr = bigIntToBytes(pair.sendCtr, 8);
  const encrypted = aesCtr(pair.sendAes, ctr, plaintext);
  const oldMacKeys = concatBytes(...st.oldMacKeys);
  st.oldMacKeys = [];
  const sendMac = pair.sendMac;
  return {
    fields: { flags, senderKeyId: ourId, recipientKeyId: st.theirKeyId, nextDh: st.ourCur.gx, ctr, encrypted },
    mac: (macInput) => hmacSha1(sendMac, macInput),
    oldMacKeys,
    extraKey: pair.extraKey,
  };
}

export type OpenResult =
  | { ok: false; code: string }
  | { ok: true; plaintext: Uint8Array; extraKey: Uint8Array; commit: (env: OtrEnv) => void };

/**
 * Verify and decrypt a received data message without changing `st`. Order: key ids known, MAC, next_dh in
 * range, counter strictly increasing (and non-zero), then decrypt. `commit` records the counter and rotates keys
 * (spec "When you receive a Data Message").
 */
export function openData(st: DataKeyState, f: DataFields, mac: Uint8Array, macInput: Uint8Array): OpenResult {
  if (f.senderKeyId === 0 || f.recipientKeyId === 0) return { ok: false, code: CODE.UNKNOWN_KEYID };
  let ourKey: DhKeyPair | null;
  if (f.recipientKeyId === st.ourKeyId) ourKey = st.ourCur;
  else if (f.recipientKeyId === st.ourKeyId - 1) ourKey = st.ourPrev;
  else ourKey = null;
  let theirPub: bigint | null;
  if (f.senderKeyId === st.theirKeyId) theirPub = st.theirCur;
  else if (f.senderKeyId === st.theirKeyId - 1) theirPub = st.theirPrev;
  else theirPub = null;
  if (ourKey === null || theirPub === null) return { ok: false, code: CODE.UNKNOWN_KEYID };
  if (f.ctr.length !== 8) return { ok: false, code: CODE.MALFORMED };

  const id = pairId(f.recipientKeyId, f.senderKeyId);
  const existing = st.pairs.get(id);
  const pair = existing ?? makePair(ourKey, theirPub);
  if (!constantTimeEqual(hmacSha1(pair.recvMac, macInput), mac)) return { ok: false, code: CODE.BAD_MAC };
  // libotr skips this check: a next_dh of 0, 1 or p-1 would give a shared secret anyone can compute. After the
  // MAC, so the code tells that the authenticated peer itself sent it.
  if (!isValidDhPublic(f.nextDh)) return { ok: false, code: CODE.BAD_DH_RANGE };
  const ctr = bytesToBigInt(f.ctr);
  if (ctr <= pair.recvCtr) return { ok: false, code: CODE.COUNTER_REPLAY };
  if (f.senderKeyId === st.theirKeyId && st.theirKeyId >= MAX_KEY_ID) return { ok: false, code: CODE.UNKNOWN_KEYID };
  const plaintext = aesCtr(pair.recvAes, f.ctr, f.encrypted);

  const commit = (env: OtrEnv): void => {
    if (!existing) st.pairs.set(id, pair);
    // Saved too, so a message replayed after a restart is still refused, and rotated keys leave the disk.
    st.dirty = true;
    pair.recvCtr = ctr;
    pair.recvMacUsed = true;
    // The peer has seen our newest key: forget the previous one, make a new next key.
    if (f.recipientKeyId === st.ourKeyId && st.ourCur !== null) {
      retirePairs(st, (ourId) => ourId === st.ourKeyId - 1);
      st.ourPrev = st.ourCur;
      st.ourCur = generateDhKeyPair(env);
      st.ourKeyId += 1;
    }
    // The peer used its newest key we know: its announced next key becomes current.
    if (f.senderKeyId === st.theirKeyId) {
      retirePairs(st, (_o, theirId) => theirId === st.theirKeyId - 1);
      st.theirPrev = st.theirCur;
      st.theirCur = f.nextDh;
      st.theirKeyId += 1;
    }
  };
  return { ok: true, plaintext, extraKey: pair.extraKey, commit };
}

/** Drop the pairs matched by `dead`, keeping their used receiving MAC keys for revelation. */
function retirePairs(st: DataKeyState, dead: (ourId: number, theirId: number) => boolean): void {
  for (const [id, pair] of st.pairs) {
    const [o, t] = id.split(":").map(Number) as [number, number];
    if (!dead(o, t)) continue;
    if (pair.recvMacUsed) st.oldMacKeys.push(pair.recvMac);
    st.pairs.delete(id);
  }
  if (st.oldMacKeys.length > MAX_OLD_MAC_KEYS) st.oldMacKeys.splice(0, st.oldMacKeys.length - MAX_OLD_MAC_KEYS);
}
