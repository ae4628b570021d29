// IRC case mapping (RFC 1459 §2.2; ISUPPORT CASEMAPPING, draft-brocklesby-irc-isupport §3.4).
// Under rfc1459 `[]\^` are the upper-case forms of `{}|~`, so "Bob[1]" and "bob{1}" are the same nick: every
// nick used as a key (DM rooms, ghosts, sessions) goes through foldNick so two spellings never get two rooms.

export type CaseMapping = "rfc1459" | "strict-rfc1459" | "ascii";

export function parseCaseMapping(value: unknown): CaseMapping {
  const v = typeof value === "string" ? value.toLowerCase() : "";
  return v === "ascii" || v === "strict-rfc1459" ? v : "rfc1459";
}

export function foldNick(nick: string, mapping: CaseMapping = "rfc1459"): string {
  let out = "";
  for (const ch of nick) {
    const c = ch.charCodeAt(0);
    if (c >= 0x41 && c <= 0x5a) out += String.fromCharCode(c + 32);
    else if (mapping !== "ascii" && (ch === "[" || ch === "]" || ch === "\\")) out += String.fromCharCode(c + 32);
    else if (mapping === "rfc1459" && ch === "^") out += "~";
    else out += ch;
  }
  return out;
}

export function sameNick(a: string, b: string, mapping: CaseMapping = "rfc1459"): boolean {
  return foldNick(a, mapping) === foldNick(b, mapping);
}
