// What the library tells its caller. Mirrors libotr's message and SMP events (OtrlMessageEvent, OtrlSMPEvent)
// as one discriminated union; every rejection of peer input carries a stable code.
import type { Tlv } from "./wire/messages.js";

export type OtrEvent =
  | { type: "received"; text: string; encrypted: boolean; tlvs: Tlv[] }
  | { type: "gone-secure"; version: 2 | 3; fingerprint: string; ssid: Uint8Array; theirInstance: number }
  | { type: "still-secure" }
  | { type: "gone-insecure"; reason: "peer-ended" | "we-ended" }
  | { type: "smp-ask"; question: string | null }
  | { type: "smp-in-progress" }
  | { type: "smp-success" }
  | { type: "smp-failure" }
  | { type: "smp-abort"; by: "peer" | "us" | "protocol" }
  | { type: "smp-cheated" }
  | { type: "unreadable"; code?: string }
  | { type: "malformed"; code: string }
  | { type: "unencrypted-received" }
  | { type: "for-other-instance" }
  | { type: "reflected" }
  | { type: "error-received"; text: string }
  | { type: "extra-symmetric-key"; use: number; useData: Uint8Array; key: Uint8Array }
  | { type: "fragment-dropped"; reason: string }
  | { type: "ake-failed"; code: string }
  | { type: "queued"; count: number }
  | { type: "refused"; code: string };

/** toSend holds wire lines, already fragmented to the account's maxFragmentSize. */
export interface OtrResult {
  events: OtrEvent[];
  toSend: string[];
}

export interface OtrSendResult extends OtrResult {
  outcome: "encrypted" | "plaintext" | "queued" | "refused";
}

/**
 * Stable codes carried by malformed / ake-failed / refused / fragment-dropped events. Callers and tests match
 * on these strings; never rename one.
 */
export const CODE = Object.freeze({
  MALFORMED: "malformed",
  BAD_MAC: "bad-mac",
  COUNTER_REPLAY: "counter-replay",
  NOT_OUR_INSTANCE: "not-our-instance",
  BAD_INSTANCE: "bad-instance",
  BAD_SIGNATURE: "bad-signature",
  BAD_DH_RANGE: "bad-dh-range",
  BAD_HASHGX: "bad-hashgx",
  UNKNOWN_KEYID: "unknown-keyid",
  FRAGMENT_LIMIT: "fragment-limit",
  VERSION_NOT_ALLOWED: "version-not-allowed",
  INSTANCE_LIMIT: "instance-limit",
  NOT_ENCRYPTED: "not-encrypted",
  FINISHED: "finished",
  QUEUE_FULL: "queue-full",
  QUEUE_EXPIRED: "queue-expired",
  POLICY_NEVER: "policy-never",
  SMP_NOT_READY: "smp-not-ready",
  /** An AKE message or SMP request reached an account created without its private key (caller's order). */
  NO_PRIVATE_KEY: "no-private-key",
  UNEXPECTED: "unexpected",
} as const);
export type Code = (typeof CODE)[keyof typeof CODE];
