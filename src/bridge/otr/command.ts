// `!otr ...` in a DM room (and `otr <network> <nick> ...` in the management room, which hands over the part after
// the nick). Parsing is pure and total: every input maps to one command or to a usage reply.
import type { OtrPolicyName } from "../../store/types.js";
import { isPolicyName } from "./policy.js";

export type OtrCommand =
  | { name: "start" }
  | { name: "end" }
  | { name: "refresh" }
  | { name: "status" }
  | { name: "fingerprint" }
  | { name: "trust"; fingerprint: string | null }
  | { name: "distrust" }
  | { name: "smp"; secret: string }
  | { name: "ask"; question: string; secret: string }
  | { name: "smp-abort" }
  | { name: "policy"; policy: OtrPolicyName | null }
  | { name: "help" }
  | { name: "invalid"; reply: string };

export const OTR_HELP = [
  "OTR commands (in this room, start them with !otr):",
  "  !otr start                 start a private (encrypted) conversation",
  "  !otr end                   end it",
  "  !otr refresh               end and start again (new session keys)",
  "  !otr status                whether the conversation is private and verified",
  "  !otr fingerprint           your fingerprint and your contact's",
  "  !otr trust [fingerprint]   mark your contact's current key as verified (after comparing it another way)",
  "  !otr distrust              mark it unverified again",
  "  !otr smp <secret>          verify with a secret you both know (or answer your contact's question)",
  "  !otr ask <question> ; <secret>   the same, showing your contact a question",
  "  !otr smp-abort             stop a verification in progress",
  "  !otr policy [never|manual|opportunistic|always]   show or set the OTR policy with this contact",
  "  !otr help                  this list",
  "Messages containing a secret are removed from the room once read.",
].join("\n");

const PREFIX = /^!otr(?:\s+([\s\S]*))?$/i;

/** The arguments of a `!otr` message, or null when the text is not one. */
export function otrCommandArgs(text: string): string | null {
  const m = PREFIX.exec(text.trim());
  return m ? (m[1] ?? "").trim() : null;
}

/** Whether the command text carries a secret (so the event must be redacted), even when it does not parse. */
export function carriesSecret(args: string): boolean {
  return /^(?:smp|ask)(?:\s|$)/i.test(args.trim());
}

export function parseOtrCommand(args: string): OtrCommand {
  const trimmed = args.trim();
  const m = /^(\S+)(?:\s+([\s\S]*))?$/.exec(trimmed);
  if (!m) return { name: "help" };
  const word = m[1]!.toLowerCase();
  const rest = (m[2] ?? "").trim();
  const noArgs = (c: OtrCommand): OtrCommand => (rest === "" ? c : { name: "invalid", reply: `\`!otr ${word}\` takes no arguments.` });
  switch (word) {
    case "start":
    case "end":
    case "refresh":
    case "status":
    case "fingerprint":
    case "distrust":
    case "smp-abort":
    case "help":
      return noArgs({ name: word });
    case "trust":
      return { name: "trust", fingerprint: rest === "" ? null : rest };
    case "smp":
      return rest === "" ? { name: "invalid", reply: "Usage: !otr smp <secret>" } : { name: "smp", secret: rest };
    case "ask": {
      const at = rest.indexOf(";");
      const question = at < 0 ? "" : rest.slice(0, at).trim();
      const secret = at < 0 ? "" : rest.slice(at + 1).trim();
      if (question === "" || secret === "") return { name: "invalid", reply: "Usage: !otr ask <question> ; <secret>" };
      return { name: "ask", question, secret };
    }
    case "policy": {
      if (rest === "") return { name: "policy", policy: null };
      const p = rest.toLowerCase();
      return isPolicyName(p) ? { name: "policy", policy: p } : { name: "invalid", reply: "Usage: !otr policy [never|manual|opportunistic|always]" };
    }
    default:
      return { name: "invalid", reply: `Unknown OTR command \`${m[1]}\`. Type \`!otr help\` for the list.` };
  }
}
