// One OTR session with one peer instance (libotr's ConnContext): message state, AKE state, data keys, SMP.
// The conversation owns a master session (v2 peers, and our own query/commit before the peer's instance is
// known) and one child per peer instance tag (spec v3 "Instance Tags").
import { AUTH_NONE, type AkeSuccess, type AuthState } from "./ake.js";
import { initialDataKeys, openData, sealData, type DataFields, type DataKeyState } from "./data.js";
import { formatFingerprint } from "./crypto/dsa.js";
import { Smp } from "./smp.js";
import type { OtrEnv } from "./env.js";
import { joinPlaintext, splitPlaintext, type Tlv } from "./wire/messages.js";
import { encodeDataLine, type IncomingData } from "./wireio.js";

export type MsgState = "plaintext" | "encrypted" | "finished";

/** libotr's heartbeat: after receiving, if we have sent nothing for this long, send an empty data message. */
export const HEARTBEAT_INTERVAL_MS = 60_000;

export class Session {
  msgstate: MsgState = "plaintext";
  auth: AuthState = AUTH_NONE;
  /** Protocol version of the encrypted session. */
  version: 2 | 3 | null = null;
  keys: DataKeyState | null = null;
  theirFingerprint: Uint8Array | null = null;
  ssid: Uint8Array | null = null;
  smp: Smp | null = null;
  lastSent = 0;
  lastRecv = 0;
  /** Order of the last accepted message among the conversation's sessions (ties of lastRecv within one ms). */
  recvSeq = 0;

  /** theirInstance 0 = the master session. */
  constructor(readonly theirInstance: number) {}

  get isMaster(): boolean {
    return this.theirInstance === 0;
  }

  /** Enter MSGSTATE_ENCRYPTED with fresh data keys; returns true when this refreshed a session with the same key. */
  goSecure(done: AkeSuccess, env: OtrEnv): boolean {
    const same =
      this.msgstate === "encrypted" &&
      this.theirFingerprint !== null &&
      formatFingerprint(this.theirFingerprint) === formatFingerprint(done.theirFingerprint);
    this.msgstate = "encrypted";
    this.version = done.version;
    this.keys = initialDataKeys(done.our, done.ourKeyId, done.theirKeyId, done.theirGy, done.s);
    this.theirFingerprint = done.theirFingerprint;
    this.ssid = done.ssid;
    // SMP state belongs to one encrypted session (spec: it is abandoned whenever ENCRYPTED is left).
    this.smp = new Smp(env);
    this.lastSent = env.now();
    return same;
  }

  /** Forget keys; msgstate becomes `to` (plaintext when we end, finished when the peer did). */
  dropKeys(to: MsgState): void {
    this.msgstate = to;
    this.keys = null;
    this.smp = null;
    if (to === "plaintext") {
      this.version = null;
      this.theirFingerprint = null;
      this.ssid = null;
    }
  }
}

export interface SessionTags {
  ourInstance: number;
  theirInstance: number;
}

/**
 * Encrypt text + TLVs into one unfragmented "?OTR:" line. Plaintext format: UTF-8 text, then (if there are
 * TLVs) a NUL and the TLVs. Returns the line and the extra symmetric key of the pair used.
 */
export function encryptToLine(
  s: Session,
  text: Uint8Array,
  tlvs: Tlv[],
  flags: number,
  ourInstance: number,
  env: OtrEnv,
): { line: string; extraKey: Uint8Array } {
  if (s.keys === null || s.version === null) throw new Error("encryptToLine: session not encrypted");
  const sealed = sealData(s.keys, joinPlaintext(text, tlvs), flags, env);
  const line = encodeDataLine(s.version, ourInstance, s.theirInstance, sealed.fields, sealed.mac, sealed.oldMacKeys);
  s.lastSent = env.now();
  return { line, extraKey: sealed.extraKey };
}

export type DecryptResult =
  | { ok: false; code: string }
  | { ok: true; text: string; tlvs: Tlv[]; flags: number; extraKey: Uint8Array; commit: (env: OtrEnv) => void };

const utf8 = new TextDecoder("utf-8");

/** Verify and decrypt; nothing changes until the caller runs `commit`. */
export function decrypt(s: Session, msg: IncomingData): DecryptResult {
  if (s.keys === null) return { ok: false, code: "not-encrypted" };
  const r = openData(s.keys, msg.fields as DataFields, msg.mac, msg.macInput);
  if (!r.ok) return r;
  // A truncated trailing TLV is dropped, as libotr's otrl_tlv_parse does: the MAC proved the peer sent it,
  // so there is nothing to reject.
  const { text, tlvs } = splitPlaintext(r.plaintext);
  return { ok: true, text: utf8.decode(text), tlvs, flags: msg.fields.flags, extraKey: r.extraKey, commit: r.commit };
}


