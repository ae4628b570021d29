// What the Matrix user sees about OTR (team contract, WAVE2.md): notice codes carried in
// `org.matrix_otr_irc.notice`, the room state event `org.matrix_otr_irc.otr_status`, and the per-message flag
// `org.matrix_otr_irc.otr`. Tests match on the codes and fields, never on the prose.

export const NOTICE_KEY = "org.matrix_otr_irc.notice";
export const STATUS_EVENT = "org.matrix_otr_irc.otr_status";
export const MESSAGE_FLAG_KEY = "org.matrix_otr_irc.otr";

export type NoticeCode =
  | "gone-secure"
  | "still-secure"
  | "ended-by-peer"
  | "ended-by-us"
  | "smp-question"
  | "smp-in-progress"
  | "smp-success"
  | "smp-failure"
  | "smp-abort"
  | "smp-cheated"
  | "key-changed"
  | "unreadable"
  | "plaintext-in-private"
  | "held"
  | "returned"
  | "refused"
  | "error-received"
  | "policy"
  | "command"
  | "key-generating"
  | "resume-failed"
  | "not-saved";

export interface OtrStatusContent {
  state: "plaintext" | "encrypted" | "finished";
  verified: boolean;
  fingerprint: string | null;
  protocol_version: 2 | 3 | null;
}

/** Quotes user text in a notice (each line prefixed by "> "), so it reads as given back, not as said. */
export function quote(text: string): string {
  return text.split("\n").map((l) => `> ${l}`).join("\n");
}
