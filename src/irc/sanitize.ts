// The one place where values become IRC protocol lines (RFC 1459 §2.3, RFC 2812 §2.3.1).
// Every command the adapter sends is built by `buildLine`, so a CR, LF or NUL coming from Matrix can never end a
// line early and smuggle a second command (matrix-appservice-irc's CVE-2021-32659 and CVE-2023-38690 were both a
// path that skipped the check). Long text is split here too, so no line the server relays exceeds 512 bytes.

/** Bytes of one IRC line including the trailing CR LF (RFC 1459 §2.3). */
export const IRC_MAX_LINE_BYTES = 512;
/** A host part can be up to 63 bytes (RFC 1035 label limits used by most servers' HOSTLEN); assumed when unknown. */
export const ASSUMED_HOST_BYTES = 63;
/** Ident (USERLEN 10 on most servers) plus a possible `~` prefix added by the server. */
export const ASSUMED_USER_BYTES = 11;

export class IrcLineError extends Error {
  constructor(readonly code: "bad-param" | "empty-param" | "line-too-long", message: string) {
    super(message);
    this.name = "IrcLineError";
  }
}

const UNSAFE = /[\r\n\0]/g;
const encoder = new TextEncoder();

export function utf8Bytes(s: string): number {
  return encoder.encode(s).length;
}

/** Removes CR, LF and NUL; used for free text that must stay on one line (quit reasons, gecos). */
export function stripUnsafe(s: string): string {
  return s.replace(UNSAFE, " ");
}

/**
 * A middle parameter (nick, target, channel) may not contain space, CR, LF, NUL, and may not start with ':'
 * (that would turn it into the trailing parameter and shift every argument after it).
 */
export function checkMiddleParam(value: string): void {
  if (value.length === 0) throw new IrcLineError("empty-param", "an IRC parameter is empty");
  if (/[\r\n\0 ]/.test(value) || value.startsWith(":")) {
    throw new IrcLineError("bad-param", "an IRC parameter contains a space, ':' prefix or a control character");
  }
}

/** Builds `COMMAND p1 p2 :trailing` after checking every piece; throws IrcLineError instead of emitting a bad line. */
export function buildLine(command: string, params: string[], trailing?: string): string {
  if (!/^[A-Za-z]+$|^\d{3}$/.test(command)) throw new IrcLineError("bad-param", "invalid IRC command name");
  for (const p of params) checkMiddleParam(p);
  let line = [command, ...params].join(" ");
  if (trailing !== undefined) {
    if (UNSAFE.test(trailing)) {
      UNSAFE.lastIndex = 0;
      throw new IrcLineError("bad-param", "trailing parameter contains CR, LF or NUL");
    }
    UNSAFE.lastIndex = 0;
    line += " :" + trailing;
  }
  if (utf8Bytes(line) + 2 > IRC_MAX_LINE_BYTES) throw new IrcLineError("line-too-long", "IRC line exceeds 512 bytes");
  return line;
}

export interface PrefixShape {
  nick: string;
  user?: string | undefined;
  host?: string | undefined;
}

/**
 * Bytes left for the text of `COMMAND target :text` once the server prepends `:nick!user@host ` and appends CR LF
 * on the copy it relays to the recipient. Unknown user/host parts are assumed at their usual maximum.
 */
export function textBudget(prefix: PrefixShape, command: string, target: string, maxLineBytes = IRC_MAX_LINE_BYTES): number {
  const userBytes = prefix.user ? utf8Bytes(prefix.user) : ASSUMED_USER_BYTES;
  const hostBytes = prefix.host ? utf8Bytes(prefix.host) : ASSUMED_HOST_BYTES;
  const overhead =
    1 + utf8Bytes(prefix.nick) + 1 + userBytes + 1 + hostBytes + 1 + // ":nick!user@host "
    utf8Bytes(command) + 1 + utf8Bytes(target) + 2 + // "PRIVMSG target :"
    2; // CR LF
  return Math.min(maxLineBytes, IRC_MAX_LINE_BYTES) - overhead;
}

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** Splits a string into pieces of at most maxBytes UTF-8 bytes, never inside a code point. */
function splitCodePoints(s: string, maxBytes: number): string[] {
  const out: string[] = [];
  let cur = "";
  let curBytes = 0;
  for (const cp of s) {
    const b = utf8Bytes(cp);
    if (curBytes + b > maxBytes && cur) {
      out.push(cur);
      cur = "";
      curBytes = 0;
    }
    cur += cp;
    curBytes += b;
  }
  if (cur) out.push(cur);
  return out;
}

/**
 * Splits one line of text (no CR/LF) into chunks of at most maxBytes, at grapheme boundaries, preferring the last
 * space when it keeps the chunk at least half full (that space is dropped: it is where the line breaks). A single grapheme larger than maxBytes (long runs of combining
 * marks) falls back to code point boundaries, because the line limit is a hard rule and the grapheme one is not.
 */
function splitOneLine(line: string, maxBytes: number): string[] {
  const out: string[] = [];
  let cur: string[] = []; // graphemes
  let curBytes = 0;
  let lastSpace = -1; // index in cur of the last space grapheme
  const flush = (upTo: number) => {
    const piece = cur.slice(0, upTo).join("");
    if (piece) out.push(piece);
    cur = cur.slice(upTo);
    curBytes = utf8Bytes(cur.join(""));
    lastSpace = cur.lastIndexOf(" ");
  };
  for (const { segment } of segmenter.segment(line)) {
    const b = utf8Bytes(segment);
    if (b > maxBytes) {
      flush(cur.length);
      const parts = splitCodePoints(segment, maxBytes);
      out.push(...parts.slice(0, -1));
      const rest = parts[parts.length - 1] ?? "";
      cur = rest ? [rest] : [];
      curBytes = utf8Bytes(rest);
      lastSpace = -1;
      continue;
    }
    if (curBytes + b > maxBytes) {
      const spaceBytes = lastSpace > 0 ? utf8Bytes(cur.slice(0, lastSpace + 1).join("")) : 0;
      if (lastSpace > 0 && spaceBytes * 2 >= maxBytes) {
        // The space becomes the line break: servers strip trailing spaces and clients trim leading ones anyway.
        flush(lastSpace);
        cur.shift();
        curBytes = utf8Bytes(cur.join(""));
        lastSpace = cur.lastIndexOf(" ");
      }
      if (curBytes + b > maxBytes) flush(cur.length);
    }
    cur.push(segment);
    curBytes += b;
    if (segment === " ") lastSpace = cur.length - 1;
  }
  flush(cur.length);
  return out;
}

/**
 * Turns free text into IRC-safe message bodies: CR, LF and CR LF separate lines (each becomes its own message,
 * never a new command), NUL is dropped, empty lines are skipped (PRIVMSG with empty text is an error), and each
 * line is split to fit maxBytes.
 */
export function splitMessage(text: string, maxBytes: number): string[] {
  if (maxBytes < 4) throw new IrcLineError("line-too-long", "no room left for message text");
  const out: string[] = [];
  for (const raw of text.split(/\r\n|\r|\n/)) {
    const line = raw.replace(/\0/g, "");
    if (line.trim() === "") continue;
    out.push(...splitOneLine(line, maxBytes));
  }
  return out;
}
