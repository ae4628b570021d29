// libotr's on-disk files, so a user can bring an identity from pidgin, irssi or bitlbee (and take it back):
// - private keys (otr.private_key / otr.key): (privkeys (account (name ..) (protocol ..) (private-key (dsa (p ..)
//   (q ..) (g ..) (y ..) (x ..))))) in libgcrypt S-expression text — libotr privkey.c otrl_privkey_read_FILEp;
// - fingerprints (otr.fingerprints): lines username \t accountname \t protocol \t 40 hex \t trust, trust empty =
//   not verified — otrl_privkey_read_fingerprints_FILEp / _write_fingerprints_FILEp;
// - instance tags (otr.instance_tags): lines accountname \t protocol \t 8 hex; lines without tabs (libotr writes
//   a warning line first) are ignored — instag.c.
// Files come from users: parsers return { ok: false, code } or per-line errors, never throw.
import { bytesToBigInt } from "./crypto/bigint.js";
import { type DsaPrivateKey } from "./crypto/dsa.js";
import { modPowSecret } from "./crypto/modexp.js";
import { parseSexp, sexpFind, sexpHead, sexpMpi, sexpString, type Sexp } from "./wire/sexp.js";

export interface PrivateKeyEntry {
  account: string;
  protocol: string;
  key: DsaPrivateKey;
}

export type KeyfileErrorCode = "sexp-syntax" | "not-privkeys" | "bad-account" | "bad-key" | "key-mismatch";
export interface KeyfileError {
  code: KeyfileErrorCode;
  message: string;
}

const dec = new TextDecoder("utf-8", { fatal: false });

function atomOf(list: Sexp[] | null, index = 1): Uint8Array | null {
  const a = list?.[index];
  return a instanceof Uint8Array ? a : null;
}

function keyFrom(priv: Sexp[]): DsaPrivateKey | KeyfileError {
  const dsa = sexpFind(priv, "dsa");
  if (!dsa) return { code: "bad-key", message: "private-key has no (dsa ...)" };
  const v: Partial<Record<"p" | "q" | "g" | "y" | "x", bigint>> = {};
  for (const name of ["p", "q", "g", "y", "x"] as const) {
    const a = atomOf(sexpFind(dsa, name));
    if (!a) return { code: "bad-key", message: `dsa key has no ${name}` };
    v[name] = bytesToBigInt(a);
  }
  const { p, q, g, y, x } = v as Required<typeof v>;
  if (p < 3n || q < 2n || g < 2n || g >= p || x <= 0n || x >= q || y < 2n || y >= p) {
    return { code: "bad-key", message: "dsa values out of range" };
  }
  // Same bounds dsaVerify applies to peers: r and s travel in 20 bytes, so q is at most 160 bits.
  if (p.toString(2).length > 3072 || q.toString(2).length > 160) return { code: "bad-key", message: "dsa key too large" };
  // A corrupted or hand-edited key would otherwise only show up as peers rejecting our signatures.
  if (modPowSecret(g, x, p) !== y) return { code: "key-mismatch", message: "y is not g^x mod p" };
  return { p, q, g, y, x };
}

/** Parse a libotr private key file. Every account must be well formed (libotr refuses the whole file otherwise). */
export function parsePrivateKeyFile(text: string): { ok: true; keys: PrivateKeyEntry[] } | { ok: false; error: KeyfileError } {
  const s = parseSexp(text);
  if (!s.ok) return { ok: false, error: { code: "sexp-syntax", message: `${s.message} at offset ${s.offset}` } };
  const top = s.value as Sexp[];
  if (sexpHead(top) !== "privkeys") return { ok: false, error: { code: "not-privkeys", message: "file does not start with (privkeys" } };
  const keys: PrivateKeyEntry[] = [];
  for (const acct of top.slice(1)) {
    if (!Array.isArray(acct) || sexpHead(acct) !== "account") {
      return { ok: false, error: { code: "bad-account", message: "expected (account ...)" } };
    }
    const name = atomOf(sexpFind(acct, "name"));
    const proto = atomOf(sexpFind(acct, "protocol"));
    const priv = sexpFind(acct, "private-key");
    if (!name || !proto || !priv) {
      return { ok: false, error: { code: "bad-account", message: "account needs name, protocol and private-key" } };
    }
    const key = keyFrom(priv);
    if ("code" in key) return { ok: false, error: key };
    keys.push({ account: dec.decode(name), protocol: dec.decode(proto), key });
  }
  return { ok: true, keys };
}

/** Write keys in the layout libotr's otrl_privkey_generate_FILEp produces. */
export function serializePrivateKeyFile(keys: PrivateKeyEntry[]): string {
  let out = "(privkeys\n";
  for (const { account, protocol, key } of keys) {
    out +=
      " (account\n" +
      `(name ${sexpString(account)})\n` +
      `(protocol ${sexpString(protocol)})\n` +
      "(private-key \n (dsa \n" +
      `  (p ${sexpMpi(key.p)})\n  (q ${sexpMpi(key.q)})\n  (g ${sexpMpi(key.g)})\n` +
      `  (y ${sexpMpi(key.y)})\n  (x ${sexpMpi(key.x)})\n` +
      "  )\n )\n )\n";
  }
  return out + ")\n";
}

// ------------------------------------------------------------------ fingerprints

export interface FingerprintEntry {
  /** The peer. */
  username: string;
  account: string;
  protocol: string;
  fingerprint: Uint8Array; // 20 bytes
  /** libotr's trust string: "" = not verified; "verified" (pidgin) or "smp" mean verified. */
  trust: string;
}

export type LineErrorCode = "missing-field" | "bad-hex" | "bad-length" | "bad-instance-tag";
export interface LineError {
  line: number; // 1-based
  code: LineErrorCode;
}

/** Parse a fingerprint file; malformed lines are skipped (as libotr does) and reported in `errors`. */
export function parseFingerprintFile(text: string): { entries: FingerprintEntry[]; errors: LineError[] } {
  const entries: FingerprintEntry[] = [];
  const errors: LineError[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw === "") return;
    const f = raw.replace(/\r$/, "").split("\t");
    if (f.length < 4) return errors.push({ line: i + 1, code: "missing-field" });
    const [username, account, protocol, hex] = f as [string, string, string, string];
    if (hex.length !== 40) return errors.push({ line: i + 1, code: "bad-length" });
    if (!/^[0-9a-fA-F]{40}$/.test(hex)) return errors.push({ line: i + 1, code: "bad-hex" });
    entries.push({
      username, account, protocol,
      fingerprint: new Uint8Array(Buffer.from(hex, "hex")),
      trust: f.length > 4 ? f.slice(4).join("\t") : "",
    });
  });
  return { entries, errors };
}

export function serializeFingerprintFile(entries: FingerprintEntry[]): string {
  return entries
    .map((e) => {
      if (e.fingerprint.length !== 20) throw new RangeError("fingerprint must be 20 bytes");
      for (const v of [e.username, e.account, e.protocol, e.trust]) {
        if (/[\t\r\n]/.test(v)) throw new RangeError("fingerprint file fields cannot contain tabs or newlines");
      }
      return `${e.username}\t${e.account}\t${e.protocol}\t${Buffer.from(e.fingerprint).toString("hex")}\t${e.trust}\n`;
    })
    .join("");
}

// ------------------------------------------------------------------ instance tags

export interface InstanceTagEntry {
  account: string;
  protocol: string;
  instanceTag: number;
}

const INSTAG_WARNING = "WARNING! You shouldn't copy this file to another computer. It is unnecessary and can cause problems.";

/** Parse an instance tag file; lines without tabs are ignored, malformed tagged lines reported. */
export function parseInstanceTagFile(text: string): { entries: InstanceTagEntry[]; errors: LineError[] } {
  const entries: InstanceTagEntry[] = [];
  const errors: LineError[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (!raw.includes("\t")) return;
    const f = raw.split("\t");
    if (f.length !== 3) return errors.push({ line: i + 1, code: "missing-field" });
    const [account, protocol, hex] = f as [string, string, string];
    if (!/^[0-9a-fA-F]{8}$/.test(hex)) return errors.push({ line: i + 1, code: "bad-hex" });
    const instanceTag = parseInt(hex, 16);
    if (instanceTag < 0x100) return errors.push({ line: i + 1, code: "bad-instance-tag" });
    entries.push({ account, protocol, instanceTag });
  });
  return { entries, errors };
}

export function serializeInstanceTagFile(entries: InstanceTagEntry[]): string {
  let out = INSTAG_WARNING + "\n";
  for (const e of entries) {
    if (!Number.isInteger(e.instanceTag) || e.instanceTag < 0x100 || e.instanceTag > 0xffffffff) {
      throw new RangeError("instance tag must be in 0x100..0xffffffff");
    }
    if (/[\t\r\n]/.test(e.account + e.protocol)) throw new RangeError("fields cannot contain tabs or newlines");
    out += `${e.account}\t${e.protocol}\t${e.instanceTag.toString(16).padStart(8, "0")}\n`;
  }
  return out;
}
