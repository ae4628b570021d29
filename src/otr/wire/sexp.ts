// Reader and writer for libgcrypt's S-expression text ("advanced" format), the encoding of libotr's private key
// file. The reader accepts every atom form libgcrypt's parser does: tokens, "quoted strings" with C escapes,
// #hex#, |base64|, and length-prefixed verbatim (3:abc); [display hints] are skipped. Input is a user's file:
// errors are results, and nesting depth and size are bounded.
import { base64Decode } from "./base64.js";

export type Sexp = Uint8Array | Sexp[];
export type SexpResult = { ok: true; value: Sexp } | { ok: false; code: "sexp-syntax"; message: string; offset: number };

const MAX_DEPTH = 64;
const MAX_INPUT_CHARS = 4 * 1024 * 1024;
const TOKEN_CHAR = /[A-Za-z0-9\-./_:*+=]/;
const WS = /[ \t\n\r\f\v]/;

class SexpError extends Error {
  constructor(message: string, readonly offset: number) {
    super(message);
  }
}

const enc = new TextEncoder();

class Parser {
  i = 0;
  constructor(private readonly s: string) {}

  fail(msg: string): never {
    throw new SexpError(msg, this.i);
  }
  skipWs(): void {
    while (this.i < this.s.length && WS.test(this.s[this.i]!)) this.i++;
  }
  peek(): string | undefined {
    return this.s[this.i];
  }

  parseList(depth: number): Sexp[] {
    if (depth > MAX_DEPTH) this.fail("nesting too deep");
    this.i++; // (
    const out: Sexp[] = [];
    for (;;) {
      this.skipWs();
      const c = this.peek();
      if (c === undefined) this.fail("unterminated list");
      if (c === ")") {
        this.i++;
        return out;
      }
      if (c === "(") out.push(this.parseList(depth + 1));
      else if (c === "[") this.skipHint();
      else out.push(this.parseAtom());
    }
  }

  skipHint(): void {
    const end = this.s.indexOf("]", this.i);
    if (end < 0) this.fail("unterminated display hint");
    this.i = end + 1;
  }

  parseAtom(): Uint8Array {
    const c = this.peek()!;
    if (c === '"') return this.parseQuoted();
    if (c === "#") return this.parseHex();
    if (c === "|") return this.parseBase64();
    if (c >= "0" && c <= "9") {
      let j = this.i;
      while (j < this.s.length && this.s[j]! >= "0" && this.s[j]! <= "9") j++;
      const next = this.s[j];
      if (next === ":") {
        const len = Number(this.s.slice(this.i, j));
        const start = j + 1;
        // Verbatim length counts bytes; key files are ASCII/UTF-8, so take characters and check the byte length.
        let k = start;
        let bytes = 0;
        while (bytes < len && k < this.s.length) {
          bytes += enc.encode(this.s[k]!).length;
          k++;
        }
        if (bytes !== len) this.fail("verbatim string shorter than its length");
        this.i = k;
        return enc.encode(this.s.slice(start, k));
      }
      if (next === '"' || next === "#" || next === "|") {
        this.i = j;
        return this.parseAtom();
      }
    }
    if (!TOKEN_CHAR.test(c)) this.fail(`unexpected character ${JSON.stringify(c)}`);
    const start = this.i;
    while (this.i < this.s.length && TOKEN_CHAR.test(this.s[this.i]!)) this.i++;
    return enc.encode(this.s.slice(start, this.i));
  }

  parseQuoted(): Uint8Array {
    this.i++;
    const out: number[] = [];
    for (;;) {
      const c = this.s[this.i++];
      if (c === undefined) this.fail("unterminated string");
      if (c === '"') return new Uint8Array(out);
      if (c !== "\\") {
        out.push(...enc.encode(c));
        continue;
      }
      const e = this.s[this.i++];
      switch (e) {
        case "b": out.push(8); break;
        case "t": out.push(9); break;
        case "v": out.push(11); break;
        case "n": out.push(10); break;
        case "f": out.push(12); break;
        case "r": out.push(13); break;
        case '"': case "'": case "\\": out.push(e.charCodeAt(0)); break;
        case "\n":
          if (this.s[this.i] === "\r") this.i++;
          break;
        case "\r":
          if (this.s[this.i] === "\n") this.i++;
          break;
        case "x": {
          const h = this.s.slice(this.i, this.i + 2);
          if (!/^[0-9a-fA-F]{2}$/.test(h)) this.fail("bad \\x escape");
          out.push(parseInt(h, 16));
          this.i += 2;
          break;
        }
        default: {
          const o = (e ?? "") + this.s.slice(this.i, this.i + 2);
          if (!/^[0-7]{3}$/.test(o) || parseInt(o, 8) > 255) this.fail("bad escape in string");
          out.push(parseInt(o, 8));
          this.i += 2;
        }
      }
    }
  }

  parseHex(): Uint8Array {
    const end = this.s.indexOf("#", this.i + 1);
    if (end < 0) this.fail("unterminated hex string");
    const hex = this.s.slice(this.i + 1, end).replace(/[ \t\n\r\f\v]/g, "");
    if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length % 2) this.fail("bad hex string");
    this.i = end + 1;
    return new Uint8Array(Buffer.from(hex, "hex"));
  }

  parseBase64(): Uint8Array {
    const end = this.s.indexOf("|", this.i + 1);
    if (end < 0) this.fail("unterminated base64 string");
    const b = base64Decode(this.s.slice(this.i + 1, end).replace(/[ \t\n\r\f\v]/g, ""));
    if (!b) this.fail("bad base64 string");
    this.i = end + 1;
    return b;
  }
}

/** Parse exactly one S-expression (surrounding whitespace allowed). */
export function parseSexp(text: string): SexpResult {
  if (text.length > MAX_INPUT_CHARS) return { ok: false, code: "sexp-syntax", message: "input too large", offset: 0 };
  const p = new Parser(text);
  try {
    p.skipWs();
    if (p.peek() !== "(") p.fail("expected '('");
    const value = p.parseList(1);
    p.skipWs();
    if (p.i !== text.length) p.fail("data after the S-expression");
    return { ok: true, value };
  } catch (e) {
    if (e instanceof SexpError) return { ok: false, code: "sexp-syntax", message: e.message, offset: e.offset };
    return { ok: false, code: "sexp-syntax", message: String(e), offset: p.i };
  }
}

/** First atom of a list, as text (the "car" that names it), or null. */
export function sexpHead(s: Sexp): string | null {
  if (!Array.isArray(s) || s.length === 0 || Array.isArray(s[0])) return null;
  return new TextDecoder().decode(s[0] as Uint8Array);
}

/** First sub-list (depth-first, like gcry_sexp_find_token) whose head is `name`. */
export function sexpFind(s: Sexp, name: string): Sexp[] | null {
  if (!Array.isArray(s)) return null;
  if (sexpHead(s) === name) return s;
  for (const c of s) {
    const f = sexpFind(c, name);
    if (f) return f;
  }
  return null;
}

/** Atom text the way libgcrypt's advanced printer writes it: a bare token when possible, else a quoted string. */
export function sexpString(v: string): string {
  if (/^[A-Za-z\-./_:*+=][A-Za-z0-9\-./_:*+=]*$/.test(v)) return v;
  let out = '"';
  for (const b of enc.encode(v)) {
    const c = String.fromCharCode(b);
    if (c === '"' || c === "\\") out += "\\" + c;
    else if (b === 10) out += "\\n";
    else if (b === 13) out += "\\r";
    else if (b === 9) out += "\\t";
    else if (b < 0x20 || b >= 0x7f) out += "\\x" + b.toString(16).padStart(2, "0");
    else out += c;
  }
  return out + '"';
}

/** An unsigned MPI as libgcrypt prints it: #HEX# with a 00 byte in front when the top bit is set. */
export function sexpMpi(n: bigint): string {
  let hex = n.toString(16).toUpperCase();
  if (hex.length % 2) hex = "0" + hex;
  if (hex.length === 0) hex = "00";
  else if (parseInt(hex[0]!, 16) >= 8) hex = "00" + hex;
  return `#${hex}#`;
}
