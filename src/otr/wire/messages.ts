// OTR messages as they appear on the wire (spec v3 "Unencoded messages" and "Encoded messages"; v2 is the same
// without the instance tags). Binary messages: D-H Commit, D-H Key, Reveal Signature, Signature, Data; TLVs;
// "?OTR:<base64>." framing; query messages; whitespace tags; "?OTR Error:"; fragment headers (see fragment.ts).
// Parsing never throws: every failure is { kind: "malformed", code }.
import { base64Decode, base64Encode } from "./base64.js";
import { decodeWith, Reader, Writer, type WireErrorCode } from "./codec.js";
import { parseFragment, type Fragment } from "./fragment.js";

export const MSG_DH_COMMIT = 0x02;
export const MSG_DATA = 0x03;
export const MSG_DH_KEY = 0x0a;
export const MSG_REVEAL_SIG = 0x11;
export const MSG_SIGNATURE = 0x12;

export const TLV_PADDING = 0;
export const TLV_DISCONNECTED = 1;
export const TLV_SMP1 = 2;
export const TLV_SMP2 = 3;
export const TLV_SMP3 = 4;
export const TLV_SMP4 = 5;
export const TLV_SMP_ABORT = 6;
export const TLV_SMP1Q = 7;
export const TLV_EXTRA_SYMKEY = 8;

export const FLAG_IGNORE_UNREADABLE = 0x01;

/** Smallest valid instance tag; 1..0xff are reserved (spec "Instance Tags"). */
export const MIN_INSTANCE_TAG = 0x100;

export type Tlv = { type: number; value: Uint8Array };

export interface MessageHeader {
  version: 2 | 3;
  /** 0 for v2 messages, which carry no instance tags. */
  senderInstance: number;
  receiverInstance: number;
}

export interface DhCommitMessage extends MessageHeader {
  type: typeof MSG_DH_COMMIT;
  encryptedGx: Uint8Array;
  /** SHA-256 of gxmpi: exactly 32 bytes (checked on parse). */
  hashedGx: Uint8Array;
}
export interface DhKeyMessage extends MessageHeader {
  type: typeof MSG_DH_KEY;
  gy: bigint;
}
export interface RevealSigMessage extends MessageHeader {
  type: typeof MSG_REVEAL_SIG;
  /** r as sent; its length (16 for AES-128) is the AKE's to check. */
  revealedKey: Uint8Array;
  encryptedSignature: Uint8Array;
  mac: Uint8Array;
}
export interface SignatureMessage extends MessageHeader {
  type: typeof MSG_SIGNATURE;
  encryptedSignature: Uint8Array;
  mac: Uint8Array;
}
export interface DataMessage extends MessageHeader {
  type: typeof MSG_DATA;
  flags: number;
  senderKeyId: number;
  recipientKeyId: number;
  nextDh: bigint;
  ctr: Uint8Array;
  encrypted: Uint8Array;
  mac: Uint8Array;
  oldMacKeys: Uint8Array;
  /** On parse: the exact received bytes the MAC covers (protocol version through the encrypted message). */
  authenticated?: Uint8Array;
}
export type EncodedMessage = DhCommitMessage | DhKeyMessage | RevealSigMessage | SignatureMessage | DataMessage;
export type AkeWireMessage = DhCommitMessage | DhKeyMessage | RevealSigMessage | SignatureMessage;

export type MalformedCode = WireErrorCode | "bad-base64" | "bad-version" | "unknown-type" | "bad-instance-tag"
  | "bad-field-length" | "bad-fragment";

export type ParsedText =
  | { kind: "encoded"; msg: EncodedMessage }
  | { kind: "query"; versions: (2 | 3)[] }
  | { kind: "error"; text: string }
  | { kind: "fragment"; fragment: Fragment }
  | { kind: "plaintext"; text: string; whitespaceVersions: (2 | 3)[] }
  | { kind: "malformed"; code: MalformedCode };

// ---------------------------------------------------------------- binary encoding

function writeHeader(w: Writer, m: MessageHeader & { type: number }): void {
  w.short(m.version).byte(m.type);
  if (m.version === 3) w.int(m.senderInstance).int(m.receiverInstance);
}

/** The bytes a data message's MAC covers: protocol version through the encrypted message. */
export function dataMessageAuthenticatedBytes(m: Omit<DataMessage, "mac" | "oldMacKeys" | "authenticated">): Uint8Array {
  const w = new Writer();
  writeHeader(w, m);
  w.byte(m.flags).int(m.senderKeyId).int(m.recipientKeyId).mpi(m.nextDh).ctr(m.ctr).data(m.encrypted);
  return w.finish();
}

/** Binary form of a message (before base64). Caller misuse (out-of-range fields) throws RangeError. */
export function encodeMessageBytes(m: EncodedMessage): Uint8Array {
  const w = new Writer();
  switch (m.type) {
    case MSG_DH_COMMIT:
      writeHeader(w, m);
      w.data(m.encryptedGx).data(m.hashedGx);
      break;
    case MSG_DH_KEY:
      writeHeader(w, m);
      w.mpi(m.gy);
      break;
    case MSG_REVEAL_SIG:
      writeHeader(w, m);
      w.data(m.revealedKey).data(m.encryptedSignature).mac(m.mac);
      break;
    case MSG_SIGNATURE:
      writeHeader(w, m);
      w.data(m.encryptedSignature).mac(m.mac);
      break;
    case MSG_DATA:
      w.bytes(dataMessageAuthenticatedBytes(m)).mac(m.mac).data(m.oldMacKeys);
      break;
  }
  return w.finish();
}

/** "?OTR:" + base64 + "." */
export function encodeOtrMessage(m: EncodedMessage): string {
  return "?OTR:" + base64Encode(encodeMessageBytes(m)) + ".";
}

class Malformed extends Error {
  constructor(readonly code: MalformedCode) {
    super(code);
  }
}

function parseBody(r: Reader): EncodedMessage {
  const version = r.readShort();
  if (version !== 2 && version !== 3) throw new Malformed("bad-version");
  const type = r.readByte();
  let senderInstance = 0;
  let receiverInstance = 0;
  if (version === 3) {
    senderInstance = r.readInt();
    receiverInstance = r.readInt();
    // Spec "Instance Tags": sender < 0x100 or receiver in 1..0xff means discard.
    if (senderInstance < MIN_INSTANCE_TAG) throw new Malformed("bad-instance-tag");
    if (receiverInstance !== 0 && receiverInstance < MIN_INSTANCE_TAG) throw new Malformed("bad-instance-tag");
  }
  const h = { version, senderInstance, receiverInstance } as MessageHeader;
  switch (type) {
    case MSG_DH_COMMIT: {
      const encryptedGx = r.readData();
      const hashedGx = r.readData();
      if (hashedGx.length !== 32) throw new Malformed("bad-field-length");
      return { ...h, type, encryptedGx, hashedGx };
    }
    case MSG_DH_KEY:
      return { ...h, type, gy: r.readMpi() };
    case MSG_REVEAL_SIG:
      return { ...h, type, revealedKey: r.readData(), encryptedSignature: r.readData(), mac: r.readMac() };
    case MSG_SIGNATURE:
      return { ...h, type, encryptedSignature: r.readData(), mac: r.readMac() };
    case MSG_DATA: {
      const flags = r.readByte();
      const senderKeyId = r.readInt();
      const recipientKeyId = r.readInt();
      const nextDh = r.readMpi();
      const ctr = r.readCtr();
      const encrypted = r.readData();
      const authenticated = r.since(0);
      const mac = r.readMac();
      const oldMacKeys = r.readData();
      return { ...h, type, flags, senderKeyId, recipientKeyId, nextDh, ctr, encrypted, mac, oldMacKeys, authenticated };
    }
    default:
      throw new Malformed("unknown-type");
  }
}

/** Parse the binary form. Byte arrays in the result are views into `bytes`. */
export function parseMessageBytes(bytes: Uint8Array): { ok: true; msg: EncodedMessage } | { ok: false; code: MalformedCode } {
  let malformed: MalformedCode | null = null;
  const res = decodeWith(bytes, (r) => {
    try {
      return parseBody(r);
    } catch (e) {
      if (e instanceof Malformed) {
        malformed = e.code;
        return null;
      }
      throw e;
    }
  }, { allowTrailing: false });
  if (malformed) return { ok: false, code: malformed };
  if (!res.ok) return { ok: false, code: res.code };
  return { ok: true, msg: res.value! };
}

// ---------------------------------------------------------------- TLVs

export function encodeTlvs(tlvs: Tlv[]): Uint8Array {
  const w = new Writer();
  for (const t of tlvs) {
    if (t.value.length > 0xffff) throw new RangeError("TLV value longer than 65535 bytes");
    w.short(t.type).short(t.value.length).bytes(t.value);
  }
  return w.finish();
}

/** Strict TLV parse: any truncated record is an error. */
export function parseTlvsStrict(b: Uint8Array): { ok: true; tlvs: Tlv[] } | { ok: false; code: MalformedCode } {
  const res = decodeWith(b, (r) => {
    const out: Tlv[] = [];
    while (r.remaining > 0) {
      const type = r.readShort();
      const len = r.readShort();
      out.push({ type, value: r.readBytes(len, "TLV value") });
    }
    return out;
  });
  return res.ok ? { ok: true, tlvs: res.value } : { ok: false, code: res.code };
}

/** Lenient TLV parse as libotr does it: records up to the first truncated one; never throws. */
export function parseTlvs(b: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let off = 0;
  while (b.length - off >= 4) {
    const type = view.getUint16(off);
    const len = view.getUint16(off + 2);
    if (b.length - off - 4 < len) break;
    out.push({ type, value: b.subarray(off + 4, off + 4 + len) });
    off += 4 + len;
  }
  return out;
}

/** Data message plaintext: message bytes, then (if there are TLVs) a NUL and the TLVs. */
export function joinPlaintext(text: Uint8Array, tlvs: Tlv[]): Uint8Array {
  if (tlvs.length === 0) return text;
  const t = encodeTlvs(tlvs);
  const out = new Uint8Array(text.length + 1 + t.length);
  out.set(text, 0);
  out.set(t, text.length + 1);
  return out;
}

/** Inverse of joinPlaintext: the human-readable part stops at the first NUL; TLVs follow it. */
export function splitPlaintext(p: Uint8Array): { text: Uint8Array; tlvs: Tlv[] } {
  const nul = p.indexOf(0);
  if (nul < 0) return { text: p, tlvs: [] };
  return { text: p.subarray(0, nul), tlvs: parseTlvs(p.subarray(nul + 1)) };
}

// ---------------------------------------------------------------- text forms

export const QUERY_PREFIX = "?OTR";
export const ERROR_PREFIX = "?OTR Error:";
/** Base whitespace tag (16 bytes) and the per-version 8-byte tags (spec "Tagged plaintext messages"). */
export const WS_TAG_BASE = " \t  \t\t\t\t \t \t \t  ";
export const WS_TAG_V1 = " \t \t  \t ";
export const WS_TAG_V2 = "  \t\t  \t ";
export const WS_TAG_V3 = "  \t\t  \t\t";

/** "?OTRv23?" / "?OTRv2?" / "?OTRv3?", optionally followed by explanatory text for clients without OTR. */
export function encodeQuery(versions: (2 | 3)[], explanation = ""): string {
  const v = [...new Set(versions)].sort().join("");
  if (!v) throw new RangeError("encodeQuery: no versions");
  return `?OTRv${v}?${explanation}`;
}

export function encodeError(text: string): string {
  return ERROR_PREFIX + text;
}

/** The whitespace tag offering `versions`, to append to a plaintext message. */
export function whitespaceTag(versions: (2 | 3)[]): string {
  let tag = WS_TAG_BASE;
  if (versions.includes(2)) tag += WS_TAG_V2;
  if (versions.includes(3)) tag += WS_TAG_V3;
  return tag;
}

const MAX_QUERY_VERSION_CHARS = 16;

/** Versions offered by a query starting at `at` ("?OTR" found there), as libotr reads them. */
function parseQueryVersions(text: string, at: number): (2 | 3)[] {
  let i = at + 4;
  if (text[i] === "?") i++; // "?OTR?" = v1; a "v..." list may follow
  const out = new Set<2 | 3>();
  if (text[i] === "v") {
    for (let j = i + 1; j < text.length && j <= i + MAX_QUERY_VERSION_CHARS; j++) {
      const c = text[j]!;
      if (c === "?") return [...out].sort();
      if (c === "2") out.add(2);
      else if (c === "3") out.add(3);
      else if (!/[0-9A-Za-z]/.test(c)) break;
    }
    return []; // no closing "?": not a version list we understand
  }
  return [];
}

/** Whitespace tag: strip base tag and following version tags; report v2/v3 (v1 and unknown 8-byte tags ignored). */
function stripWhitespaceTag(text: string): { text: string; versions: (2 | 3)[] } | null {
  const at = text.indexOf(WS_TAG_BASE);
  if (at < 0) return null;
  let end = at + WS_TAG_BASE.length;
  const versions = new Set<2 | 3>();
  while (end + 8 <= text.length) {
    const t = text.slice(end, end + 8);
    if (!/^[ \t]{8}$/.test(t)) break;
    if (t === WS_TAG_V2) versions.add(2);
    else if (t === WS_TAG_V3) versions.add(3);
    else if (t !== WS_TAG_V1) break; // not a version tag: leave the text's own whitespace alone
    end += 8;
  }
  return { text: text.slice(0, at) + text.slice(end), versions: [...versions].sort() };
}

/**
 * Classify one received line. Order follows libotr: fragments first (the spec says to check them before
 * anything else), then the first "?OTR" marker decides between encoded, query and error; then whitespace tags.
 */
export function parseOtrText(text: string): ParsedText {
  // libotr looks for the fragment marker anywhere in the line; so do we, but only a line that starts with it is
  // reported malformed when the rest does not parse (otherwise it is ordinary text that happens to contain it).
  const fragAt = Math.min(...["?OTR|", "?OTR,"].map((m) => text.indexOf(m)).filter((i) => i >= 0), Infinity);
  if (fragAt !== Infinity) {
    const f = parseFragment(text.slice(fragAt));
    if (f) return { kind: "fragment", fragment: f };
    if (fragAt === 0) return { kind: "malformed", code: "bad-fragment" };
  }
  const at = text.indexOf(QUERY_PREFIX);
  if (at >= 0) {
    if (text.startsWith("?OTR:", at)) {
      const end = text.indexOf(".", at + 5);
      if (end < 0) return { kind: "malformed", code: "bad-base64" };
      const bytes = base64Decode(text.slice(at + 5, end));
      if (!bytes) return { kind: "malformed", code: "bad-base64" };
      const r = parseMessageBytes(bytes);
      return r.ok ? { kind: "encoded", msg: r.msg } : { kind: "malformed", code: r.code };
    }
    if (text.startsWith("?OTR?", at) || text.startsWith("?OTRv", at)) {
      return { kind: "query", versions: parseQueryVersions(text, at) };
    }
    if (text.startsWith(ERROR_PREFIX, at)) {
      return { kind: "error", text: text.slice(at + ERROR_PREFIX.length).trim() };
    }
  }
  const ws = stripWhitespaceTag(text);
  if (ws) return { kind: "plaintext", text: ws.text, whitespaceVersions: ws.versions };
  return { kind: "plaintext", text, whitespaceVersions: [] };
}
