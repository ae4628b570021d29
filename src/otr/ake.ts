// The authenticated key exchange (spec v3 "Authenticated Key Exchange", the D-H Commit / D-H Key / Reveal
// Signature / Signature message formats, and "The protocol state machine": AUTHSTATE_NONE, AWAITING_DHKEY,
// AWAITING_REVEALSIG, AWAITING_SIG). Pure: every step takes the current AuthState and returns the next one plus
// what to send, never mutating its input, so a message that fails a check leaves the state exactly as it was.
// Names follow the spec: r, gx, gy, hashgx, s, c, c', m1, m2, m1', m2', M_B, X_B, keyid.
import { aesCtr, constantTimeEqual, hmacSha256, hmacSha256_160, sha256 } from "./crypto/primitives.js";
import { deriveAkeKeys, type AkeKeys } from "./crypto/kdf.js";
import { dhSharedSecret, generateDhKeyPair, isValidDhPublic, type DhKeyPair } from "./crypto/dh.js";
import { bytesToBigInt, concatBytes, encodeMpi } from "./crypto/bigint.js";
import {
  dsaSign,
  dsaVerify,
  encodeDsaSignature,
  decodeDsaSignature,
  fingerprint,
  type DsaPrivateKey,
  type DsaPublicKey,
} from "./crypto/dsa.js";
import type { OtrEnv } from "./env.js";
import { CODE } from "./events.js";

export type AkeMessage =
  | { type: "dh-commit"; encGx: Uint8Array; hashGx: Uint8Array }
  | { type: "dh-key"; gy: bigint }
  | { type: "reveal-sig"; r: Uint8Array; encSig: Uint8Array; mac: Uint8Array }
  | { type: "signature"; encSig: Uint8Array; mac: Uint8Array };

export type AuthState =
  | { readonly state: "none" }
  | {
      readonly state: "awaiting-dhkey";
      readonly version: 2 | 3;
      readonly r: Uint8Array;
      readonly our: DhKeyPair;
      readonly hashGx: Uint8Array;
      readonly commit: AkeMessage;
    }
  | {
      readonly state: "awaiting-revealsig";
      readonly version: 2 | 3;
      readonly our: DhKeyPair;
      readonly encGx: Uint8Array;
      readonly hashGx: Uint8Array;
      readonly dhKey: AkeMessage;
    }
  | {
      readonly state: "awaiting-sig";
      readonly version: 2 | 3;
      readonly our: DhKeyPair;
      readonly theirGy: bigint;
      readonly s: bigint;
      readonly keys: AkeKeys;
      readonly revealSig: AkeMessage;
    };

export const AUTH_NONE: AuthState = Object.freeze({ state: "none" });

/** Our long-term identity as the AKE needs it; built once per account. */
export interface AkeIdentity {
  privateKey: DsaPrivateKey;
  /** PUBKEY serialisation (type + 4 MPIs). */
  pubBytes: Uint8Array;
  fingerprint: Uint8Array;
}

export interface AkeSuccess {
  version: 2 | 3;
  ssid: Uint8Array;
  theirPublic: DsaPublicKey;
  theirFingerprint: Uint8Array;
  theirKeyId: number;
  theirGy: bigint;
  our: DhKeyPair;
  ourKeyId: number;
  s: bigint;
}

export interface AkeStep {
  next: AuthState;
  send: AkeMessage | null;
  done: AkeSuccess | null;
  /** Set when the message was rejected; `next` is then the unchanged input state. */
  error: string | null;
}

/** Our keyid for the AKE key: the spec's our_keyid-1 with our_keyid = 2 at the start. */
export const AKE_OUR_KEYID = 1;
const R_BYTES = 16;
const HASHGX_BYTES = 32;
// An MPI below p: 4 length bytes and at most 192 value bytes.
const MAX_GXMPI_BYTES = 4 + 192;
const ZERO_CTR = new Uint8Array(16);

const keep = (st: AuthState, error: string | null = null, send: AkeMessage | null = null): AkeStep => ({
  next: st,
  send,
  done: null,
  error,
});

/** Start (or restart) the AKE: "?OTRv3?" received or whitespace tag, or our own query answered. */
export function startAke(version: 2 | 3, env: OtrEnv): AkeStep {
  const r = env.random(R_BYTES);
  const our = generateDhKeyPair(env);
  const gxmpi = encodeMpi(our.gx);
  // r is used as raw bytes: turning it into a number and back drops leading zeros (otr.js, python-potr).
  const commit: AkeMessage = { type: "dh-commit", encGx: aesCtr(r, ZERO_CTR, gxmpi), hashGx: sha256(gxmpi) };
  return { next: { state: "awaiting-dhkey", version, r, our, hashGx: commit.hashGx, commit }, send: commit, done: null, error: null };
}

/** One incoming AKE message of `version` (already allowed by policy and addressed to us). */
export function handleAke(st: AuthState, msg: AkeMessage, version: 2 | 3, id: AkeIdentity, env: OtrEnv): AkeStep {
  switch (msg.type) {
    case "dh-commit":
      return onCommit(st, msg, version, env);
    case "dh-key":
      return onDhKey(st, msg, version, id, env);
    case "reveal-sig":
      return onRevealSig(st, msg, version, id, env);
    case "signature":
      return onSignature(st, msg, version);
  }
}

function onCommit(st: AuthState, msg: Extract<AkeMessage, { type: "dh-commit" }>, version: 2 | 3, env: OtrEnv): AkeStep {
  if (msg.hashGx.length !== HASHGX_BYTES || msg.encGx.length < 5 || msg.encGx.length > MAX_GXMPI_BYTES) {
    return keep(st, CODE.MALFORMED);
  }
  const replyWithKey = (our: DhKeyPair): AkeStep => {
    const dhKey: AkeMessage = { type: "dh-key", gy: our.gx };
    return {
      next: { state: "awaiting-revealsig", version, our, encGx: msg.encGx, hashGx: msg.hashGx, dhKey },
      send: dhKey,
      done: null,
      error: null,
    };
  };
  switch (st.state) {
    case "none":
      return replyWithKey(generateDhKeyPair(env));
    case "awaiting-dhkey":
      // Crossing commits: the higher hashed gx (32-byte big-endian) wins and its sender stays the initiator.
      if (compareBytes(st.hashGx, msg.hashGx) > 0) return keep(st, null, st.commit);
      // Ours lost. Our x was never revealed (only AES_r(gx) went out), so it can serve as y.
      return replyWithKey(st.our);
    case "awaiting-revealsig": {
      // Same D-H Key message again; the new commit replaces the old one.
      const next: AuthState = { ...st, version, encGx: msg.encGx, hashGx: msg.hashGx };
      return { next, send: st.dhKey, done: null, error: null };
    }
    case "awaiting-sig":
      return replyWithKey(generateDhKeyPair(env));
  }
}

function onDhKey(st: AuthState, msg: Extract<AkeMessage, { type: "dh-key" }>, version: 2 | 3, id: AkeIdentity, env: OtrEnv): AkeStep {
  if (!isValidDhPublic(msg.gy)) return keep(st, CODE.BAD_DH_RANGE);
  if (st.state === "awaiting-sig") {
    // A retransmitted D-H Key (our Reveal Signature got lost): resend it; any other one is ignored.
    return st.theirGy === msg.gy && st.version === version ? keep(st, null, st.revealSig) : keep(st);
  }
  if (st.state !== "awaiting-dhkey" || st.version !== version) return keep(st);
  const s = dhSharedSecret(st.our.x, msg.gy);
  const keys = deriveAkeKeys(s);
  const encSig = signedPart(keys.m1, keys.c, st.our.gx, msg.gy, id, env);
  const revealSig: AkeMessage = { type: "reveal-sig", r: st.r, encSig, mac: macOf(keys.m2, encSig) };
  return {
    next: { state: "awaiting-sig", version, our: st.our, theirGy: msg.gy, s, keys, revealSig },
    send: revealSig,
    done: null,
    error: null,
  };
}

function onRevealSig(
  st: AuthState,
  msg: Extract<AkeMessage, { type: "reveal-sig" }>,
  version: 2 | 3,
  id: AkeIdentity,
  env: OtrEnv,
): AkeStep {
  if (st.state !== "awaiting-revealsig" || st.version !== version) return keep(st);
  if (msg.r.length !== R_BYTES || msg.mac.length !== 20) return keep(st, CODE.MALFORMED);
  const gxmpi = aesCtr(msg.r, ZERO_CTR, st.encGx);
  if (!constantTimeEqual(sha256(gxmpi), st.hashGx)) return keep(st, CODE.BAD_HASHGX);
  const gx = readWholeMpi(gxmpi);
  if (gx === null) return keep(st, CODE.MALFORMED);
  if (!isValidDhPublic(gx)) return keep(st, CODE.BAD_DH_RANGE);
  const s = dhSharedSecret(st.our.x, gx);
  const keys = deriveAkeKeys(s);
  // MAC before decryption.
  if (!constantTimeEqual(macOf(keys.m2, msg.encSig), msg.mac)) return keep(st, CODE.BAD_MAC);
  const peer = verifySignedPart(keys.m1, keys.c, msg.encSig, gx, st.our.gx);
  if (typeof peer === "string") return keep(st, peer);
  const encSig = signedPart(keys.m1Prime, keys.cPrime, st.our.gx, gx, id, env);
  const sigMsg: AkeMessage = { type: "signature", encSig, mac: macOf(keys.m2Prime, encSig) };
  return {
    next: AUTH_NONE,
    send: sigMsg,
    done: { version, ssid: keys.ssid, ...peer, theirGy: gx, our: st.our, ourKeyId: AKE_OUR_KEYID, s },
    error: null,
  };
}

function onSignature(st: AuthState, msg: Extract<AkeMessage, { type: "signature" }>, version: 2 | 3): AkeStep {
  if (st.state !== "awaiting-sig" || st.version !== version) return keep(st);
  if (msg.mac.length !== 20) return keep(st, CODE.MALFORMED);
  const { keys } = st;
  if (!constantTimeEqual(macOf(keys.m2Prime, msg.encSig), msg.mac)) return keep(st, CODE.BAD_MAC);
  const peer = verifySignedPart(keys.m1Prime, keys.cPrime, msg.encSig, st.theirGy, st.our.gx);
  if (typeof peer === "string") return keep(st, peer);
  return {
    next: AUTH_NONE,
    send: null,
    done: { version, ssid: keys.ssid, ...peer, theirGy: st.theirGy, our: st.our, ourKeyId: AKE_OUR_KEYID, s: st.s },
    error: null,
  };
}

/** MAC_m2(AES_c(X)): SHA256-HMAC-160 over the encrypted signature as a DATA field (with its length). */
function macOf(m2: Uint8Array, encSig: Uint8Array): Uint8Array {
  return hmacSha256_160(m2, int32(encSig.length), encSig);
}

/** AES_c(X) with X = pub, keyid, sig(M) and M = MAC_m1(ours, theirs, pub, keyid). */
function signedPart(m1: Uint8Array, c: Uint8Array, ourGx: bigint, theirGx: bigint, id: AkeIdentity, env: OtrEnv): Uint8Array {
  const keyid = int32(AKE_OUR_KEYID);
  const M = hmacSha256(m1, encodeMpi(ourGx), encodeMpi(theirGx), id.pubBytes, keyid);
  const sig = encodeDsaSignature(dsaSign(id.privateKey, M, env));
  return aesCtr(c, ZERO_CTR, concatBytes(id.pubBytes, keyid, sig));
}

/** Decrypt and check the peer's X; the MAC over the ciphertext was checked before. */
function verifySignedPart(
  m1: Uint8Array,
  c: Uint8Array,
  encSig: Uint8Array,
  theirGx: bigint,
  ourGx: bigint,
): string | { theirPublic: DsaPublicKey; theirFingerprint: Uint8Array; theirKeyId: number } {
  const X = aesCtr(c, ZERO_CTR, encSig);
  const parsed = parseSignedPart(X);
  if (parsed === null) return CODE.MALFORMED;
  const M = hmacSha256(m1, encodeMpi(theirGx), encodeMpi(ourGx), parsed.pubBytes, int32(parsed.keyid));
  if (!dsaVerify(parsed.pub, M, parsed.sig)) return CODE.BAD_SIGNATURE;
  return { theirPublic: parsed.pub, theirFingerprint: fingerprint(parsed.pub), theirKeyId: parsed.keyid };
}

/** X = PUBKEY (SHORT type 0, MPI p q g y), INT keyid (> 0), 40-byte SIG, nothing after. */
function parseSignedPart(X: Uint8Array) {
  if (X.length < 2 || X[0] !== 0 || X[1] !== 0) return null;
  let off = 2;
  const mpis: bigint[] = [];
  for (let i = 0; i < 4; i++) {
    const m = readMpiAt(X, off);
    if (m === null) return null;
    mpis.push(m.value);
    off = m.end;
  }
  const pubBytes = X.subarray(0, off);
  if (X.length !== off + 4 + 40) return null;
  const keyid = readInt(X, off);
  if (keyid === 0) return null;
  const sig = decodeDsaSignature(X.subarray(off + 4));
  if (sig === null) return null;
  const [p, q, g, y] = mpis as [bigint, bigint, bigint, bigint];
  return { pub: { p, q, g, y }, pubBytes, keyid, sig };
}

function readInt(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

/** A minimally encoded MPI at off, or null (truncated, or a leading zero byte). */
function readMpiAt(b: Uint8Array, off: number): { value: bigint; end: number } | null {
  if (off + 4 > b.length) return null;
  const len = readInt(b, off);
  const end = off + 4 + len;
  if (end > b.length) return null;
  if (len > 0 && b[off + 4] === 0) return null;
  return { value: bytesToBigInt(b.subarray(off + 4, end)), end };
}

function readWholeMpi(b: Uint8Array): bigint | null {
  const m = readMpiAt(b, 0);
  return m !== null && m.end === b.length ? m.value : null;
}

function int32(n: number): Uint8Array {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i]! !== b[i]!) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}
