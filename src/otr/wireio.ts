// The engine's view of the wire: maps engineer A's wire structs (src/otr/wire) to the shapes the AKE and the
// data layer work with, and back. Keeps the state machines independent of the exact message layout.
import type { AkeMessage } from "./ake.js";
import type { DataFields } from "./data.js";
import type { OtrEnv } from "./env.js";
import type { Policy } from "./policy.js";
import {
  MSG_DATA,
  MSG_DH_COMMIT,
  MSG_DH_KEY,
  MSG_REVEAL_SIG,
  MSG_SIGNATURE,
  dataMessageAuthenticatedBytes,
  encodeOtrMessage,
  encodeQuery,
  parseOtrText,
  whitespaceTag as wsTag,
  type EncodedMessage,
} from "./wire/messages.js";
import { fragment, Reassembler, type Fragment } from "./wire/fragment.js";

export interface IncomingData {
  kind: "data";
  version: 2 | 3;
  senderInstance: number;
  receiverInstance: number;
  fields: DataFields;
  mac: Uint8Array;
  /** The received bytes the MAC covers. */
  macInput: Uint8Array;
}

export type Incoming =
  | { kind: "plaintext"; text: string; whitespaceVersions: (2 | 3)[] }
  | { kind: "query"; versions: (2 | 3)[] }
  | { kind: "error"; text: string }
  | { kind: "fragment"; version: 2 | 3; senderInstance: number; receiverInstance: number; fragment: Fragment }
  | { kind: "ake"; version: 2 | 3; senderInstance: number; receiverInstance: number; msg: AkeMessage }
  | IncomingData
  | { kind: "malformed"; code: string };

export function parseIncoming(text: string): Incoming {
  const p = parseOtrText(text);
  switch (p.kind) {
    case "plaintext":
    case "query":
    case "error":
    case "malformed":
      return p;
    case "fragment": {
      const f = p.fragment;
      return { kind: "fragment", version: f.version, senderInstance: f.senderInstance, receiverInstance: f.receiverInstance, fragment: f };
    }
    case "encoded":
      return fromEncoded(p.msg);
  }
}

function fromEncoded(m: EncodedMessage): Incoming {
  const h = { version: m.version, senderInstance: m.senderInstance, receiverInstance: m.receiverInstance };
  switch (m.type) {
    case MSG_DH_COMMIT:
      return { kind: "ake", ...h, msg: { type: "dh-commit", encGx: m.encryptedGx, hashGx: m.hashedGx } };
    case MSG_DH_KEY:
      return { kind: "ake", ...h, msg: { type: "dh-key", gy: m.gy } };
    case MSG_REVEAL_SIG:
      return { kind: "ake", ...h, msg: { type: "reveal-sig", r: m.revealedKey, encSig: m.encryptedSignature, mac: m.mac } };
    case MSG_SIGNATURE:
      return { kind: "ake", ...h, msg: { type: "signature", encSig: m.encryptedSignature, mac: m.mac } };
    case MSG_DATA: {
      const fields: DataFields = {
        flags: m.flags,
        senderKeyId: m.senderKeyId,
        recipientKeyId: m.recipientKeyId,
        nextDh: m.nextDh,
        ctr: m.ctr,
        encrypted: m.encrypted,
      };
      const macInput = m.authenticated ?? dataMessageAuthenticatedBytes(m);
      return { kind: "data", ...h, fields, mac: m.mac, macInput };
    }
  }
}

export function encodeAkeLine(msg: AkeMessage, version: 2 | 3, senderInstance: number, receiverInstance: number): string {
  const h =
    version === 3 ? { version, senderInstance, receiverInstance } : { version, senderInstance: 0, receiverInstance: 0 };
  switch (msg.type) {
    case "dh-commit":
      return encodeOtrMessage({ ...h, type: MSG_DH_COMMIT, encryptedGx: msg.encGx, hashedGx: msg.hashGx });
    case "dh-key":
      return encodeOtrMessage({ ...h, type: MSG_DH_KEY, gy: msg.gy });
    case "reveal-sig":
      return encodeOtrMessage({ ...h, type: MSG_REVEAL_SIG, revealedKey: msg.r, encryptedSignature: msg.encSig, mac: msg.mac });
    case "signature":
      return encodeOtrMessage({ ...h, type: MSG_SIGNATURE, encryptedSignature: msg.encSig, mac: msg.mac });
  }
}

export function encodeDataLine(
  version: 2 | 3,
  senderInstance: number,
  receiverInstance: number,
  f: DataFields,
  mac: (macInput: Uint8Array) => Uint8Array,
  oldMacKeys: Uint8Array,
): string {
  const h =
    version === 3 ? { version, senderInstance, receiverInstance } : { version, senderInstance: 0, receiverInstance: 0 };
  const body = { ...h, type: MSG_DATA, ...f } as const;
  const authenticated = dataMessageAuthenticatedBytes(body);
  return encodeOtrMessage({ ...body, mac: mac(authenticated), oldMacKeys });
}

const QUERY_EXPLANATION =
  " An Off-the-Record private conversation was requested, but your client does not support OTR." +
  " See https://otr.cypherpunks.ca/ for more information.";

function policyVersions(p: Policy): (2 | 3)[] {
  const v: (2 | 3)[] = [];
  if (p.allowV2) v.push(2);
  if (p.allowV3) v.push(3);
  return v;
}

export function queryMessage(p: Policy, explain = true): string {
  return encodeQuery(policyVersions(p), explain ? QUERY_EXPLANATION : "");
}

export function whitespaceTag(p: Policy): string {
  return wsTag(policyVersions(p));
}

export function fragmentLine(
  line: string,
  max: number,
  version: 2 | 3,
  senderInstance: number,
  receiverInstance: number,
  env: OtrEnv,
): string[] {
  return fragment(line, max, version, senderInstance, receiverInstance, env);
}

/** What the conversation needs from A's Reassembler. */
export interface ReassemblerLike {
  add(f: Fragment, now: number): { complete: string | null; dropped: string[] };
  expire(now: number): string[];
}

export function newReassembler(ourInstance: number): ReassemblerLike {
  const r = new Reassembler({ ourInstance });
  return {
    add(f, now) {
      const res = r.push(f, now);
      if (res.status === "complete") return { complete: res.text, dropped: [] };
      if (res.status === "dropped") return { complete: null, dropped: [res.reason] };
      return { complete: null, dropped: [] };
    },
    expire: (now) => r.expire(now),
  };
}
