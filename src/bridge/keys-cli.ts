// `matrix-otr-irc keys import|export`: lets an operator move a user's OTR identity between the bridge and
// libotr clients (pidgin, irssi, bitlbee), using libotr's own file formats (src/otr/keyfile.ts).
//
// Import reads a libotr private-key file (and optionally a fingerprints file), stores the key for
// (Matrix user, network) with the store's first-writer-wins rule, and records the peers' fingerprints.
// libotr counts a fingerprint as trusted when its trust field is non-empty (pidgin writes "verified" or
// "smp", irssi "manual" or "smp"): "smp" stays "smp", anything else non-empty becomes "manual".
// Export writes the same two files back; files are created 0600 and never overwrite an existing file.
//
// The stored key (Store.putOtrPrivateKeyIfAbsent bytes) is a one-account libotr private-key file in UTF-8:
// the same reader serves the bridge and the CLI, and the account/protocol names survive a round trip.
import {
  parseFingerprintFile, parsePrivateKeyFile, serializeFingerprintFile, serializePrivateKeyFile,
  type FingerprintEntry, type PrivateKeyEntry,
} from "../otr/keyfile.js";
import { dsaPublicKey, fingerprint, formatFingerprint, type DsaPrivateKey } from "../otr/crypto/dsa.js";
import { verifyFingerprint, type TrustRecord } from "../otr/trust.js";
import { foldNick as foldRfc1459 } from "../irc/casemap.js";
import type { FingerprintRecord, Store } from "../store/types.js";

/** Account and protocol names given to keys the bridge stores without a libotr origin. */
export const DEFAULT_KEY_ACCOUNT = "matrix-otr-irc";
export const DEFAULT_KEY_PROTOCOL = "IRC";

export type KeysCliErrorCode =
  | "unreadable-file" // a file to import cannot be read
  | "bad-key-file" // the private-key file is not a libotr key file (the message says why)
  | "no-such-account" // --account names no account of the key file
  | "ambiguous-account" // several accounts and no --account (the message lists them)
  | "key-exists" // the user already has a different key on this network (the store never replaces keys)
  | "no-key" // export: the user has no key on this network
  | "bad-stored-key" // export: the stored key does not parse
  | "file-exists"; // export: refusing to overwrite

export class KeysCliError extends Error {
  constructor(readonly code: KeysCliErrorCode, message: string) {
    super(message);
    this.name = "KeysCliError";
  }
}

export interface StoredOtrKey { key: DsaPrivateKey; account: string; protocol: string }

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: false });

/** The bytes the bridge stores for a private key. */
export function encodeStoredOtrKey(key: DsaPrivateKey, account = DEFAULT_KEY_ACCOUNT, protocol = DEFAULT_KEY_PROTOCOL): Uint8Array {
  return utf8.encode(serializePrivateKeyFile([{ account, protocol, key }]));
}

/** Reads stored key bytes back; null when they are not a one-account libotr key file. */
export function decodeStoredOtrKey(bytes: Uint8Array): StoredOtrKey | null {
  const parsed = parsePrivateKeyFile(fromUtf8.decode(bytes));
  if (!parsed.ok || parsed.keys.length !== 1) return null;
  const [only] = parsed.keys as [PrivateKeyEntry];
  return { key: only.key, account: only.account, protocol: only.protocol };
}

function humanFingerprint(key: DsaPrivateKey): string {
  return formatFingerprint(fingerprint(dsaPublicKey(key)));
}

function sameKey(a: DsaPrivateKey, b: DsaPrivateKey): boolean {
  return a.p === b.p && a.q === b.q && a.g === b.g && a.y === b.y && a.x === b.x;
}

export interface ImportOptions {
  userId: string;
  networkId: string;
  privateKeyFile: string;
  fingerprintsFile?: string;
  /** Which account of the key file (libotr's "name"); needed when the file holds several. */
  account?: string;
}

export interface ImportDeps {
  store: Pick<Store, "getOtrPrivateKey" | "putOtrPrivateKeyIfAbsent" | "listFingerprints" | "putFingerprint">;
  /** fs.promises.readFile fits. */
  readFile(path: string, encoding: "utf8"): Promise<string>;
  /** ms since the epoch, for firstSeen/lastSeen of imported fingerprints. Default Date.now. */
  now?: () => number;
  /** Case folding of peer nicks, as the network's CASEMAPPING says. Default rfc1459. */
  foldNick?: (nick: string) => string;
}

export interface ImportResult {
  account: string;
  protocol: string;
  /** Our fingerprint, in libotr's human form. */
  fingerprint: string;
  /** "already-present" when the store held this very key before. */
  key: "imported" | "already-present";
  fingerprints: {
    /** Lines of the chosen account recorded (verified or not). */
    recorded: number;
    verified: number;
    /** Lines of other accounts or protocols in the file, left out. */
    otherAccounts: number;
    /** 1-based numbers of lines libotr would skip too. */
    malformedLines: number[];
  };
}

async function readOrFail(deps: ImportDeps, path: string): Promise<string> {
  try {
    return await deps.readFile(path, "utf8");
  } catch (e) {
    const why = (e as { code?: string }).code ?? "read error";
    throw new KeysCliError("unreadable-file", `cannot read ${path}: ${why}`);
  }
}

function chooseAccount(keys: PrivateKeyEntry[], account: string | undefined, path: string): PrivateKeyEntry {
  if (keys.length === 0) throw new KeysCliError("bad-key-file", `${path} holds no key`);
  if (account !== undefined) {
    const hits = keys.filter((k) => k.account === account);
    if (hits.length === 0) {
      throw new KeysCliError("no-such-account", `${path} has no account "${account}"; it has: ${keys.map((k) => `"${k.account}"`).join(", ")}`);
    }
    if (hits.length > 1) {
      throw new KeysCliError("ambiguous-account", `${path} has "${account}" for several protocols: ${hits.map((k) => k.protocol).join(", ")}`);
    }
    return hits[0]!;
  }
  if (keys.length > 1) {
    throw new KeysCliError("ambiguous-account", `${path} holds several accounts, choose one with --account: ${keys.map((k) => `"${k.account}" (${k.protocol})`).join(", ")}`);
  }
  return keys[0]!;
}

export async function importIdentity(opts: ImportOptions, deps: ImportDeps): Promise<ImportResult> {
  const now = (deps.now ?? Date.now)();
  const fold = deps.foldNick ?? ((n: string) => foldRfc1459(n));

  // Read and check everything before the first write, so a bad file changes nothing.
  const keyText = await readOrFail(deps, opts.privateKeyFile);
  const parsed = parsePrivateKeyFile(keyText);
  if (!parsed.ok) throw new KeysCliError("bad-key-file", `${opts.privateKeyFile}: ${parsed.error.message} (${parsed.error.code})`);
  const chosen = chooseAccount(parsed.keys, opts.account, opts.privateKeyFile);
  const fpFile = opts.fingerprintsFile === undefined ? null : parseFingerprintFile(await readOrFail(deps, opts.fingerprintsFile));

  // The store never replaces a key (first writer wins): importing over a different key is refused, and
  // the same key again is only reported.
  const existing = await deps.store.getOtrPrivateKey(opts.userId, opts.networkId);
  const stored = existing ?? await deps.store.putOtrPrivateKeyIfAbsent(
    opts.userId, opts.networkId, encodeStoredOtrKey(chosen.key, chosen.account, chosen.protocol));
  const storedKey = decodeStoredOtrKey(stored);
  if (!storedKey || !sameKey(storedKey.key, chosen.key)) {
    const theirs = storedKey ? ` (fingerprint ${humanFingerprint(storedKey.key)})` : "";
    throw new KeysCliError("key-exists", `${opts.userId} already has another OTR key on ${opts.networkId}${theirs}; it was kept`);
  }

  const summary: ImportResult["fingerprints"] = { recorded: 0, verified: 0, otherAccounts: 0, malformedLines: [] };
  if (fpFile) {
    summary.malformedLines = fpFile.errors.map((e) => e.line);
    let records: TrustRecord[] = await deps.store.listFingerprints(opts.userId, opts.networkId);
    const save = async (r: TrustRecord) => {
      await deps.store.putFingerprint(r as FingerprintRecord);
      records = [...records.filter((o) => !(o.peerNick === r.peerNick && o.fingerprint === r.fingerprint)), r];
    };
    for (const e of fpFile.entries) {
      if (e.account !== chosen.account || e.protocol !== chosen.protocol || e.username === "") {
        summary.otherAccounts++;
        continue;
      }
      const peerNick = fold(e.username);
      const fp = Buffer.from(e.fingerprint).toString("hex");
      const sighting = { userId: opts.userId, networkId: opts.networkId, peerNick, fingerprint: fp, now };
      if (e.trust !== "") {
        for (const r of verifyFingerprint(records, sighting, e.trust === "smp" ? "smp" : "manual")) await save(r);
        summary.verified++;
      } else if (!records.some((r) => r.peerNick === peerNick && r.fingerprint === fp)) {
        await save({
          userId: opts.userId, networkId: opts.networkId, peerNick, fingerprint: fp, trust: "unverified", verifiedBy: null,
          firstSeen: now, lastSeen: now,
        });
      }
      summary.recorded++;
    }
  }

  return {
    account: chosen.account,
    protocol: chosen.protocol,
    fingerprint: humanFingerprint(chosen.key),
    key: existing ? "already-present" : "imported",
    fingerprints: summary,
  };
}

export interface ExportOptions {
  userId: string;
  networkId: string;
  privateKeyFile: string;
  fingerprintsFile?: string;
  /** Account and protocol names to write (what the target client calls the account, e.g. pidgin
   * "alice@irc.libera.chat" / "prpl-irc", irssi "alice@irc.libera.chat" / "IRC"). Default: the stored ones. */
  account?: string;
  protocol?: string;
}

export interface ExportDeps {
  store: Pick<Store, "getOtrPrivateKey" | "listFingerprints">;
  /** fs.promises.writeFile fits; called with mode 0o600 and flag "wx" (never overwrite). */
  writeFile(path: string, data: string, opts: { mode: number; flag: string }): Promise<void>;
}

export interface ExportResult {
  account: string;
  protocol: string;
  fingerprint: string;
  fingerprints: number;
}

async function writeOrFail(deps: ExportDeps, path: string, data: string): Promise<void> {
  try {
    await deps.writeFile(path, data, { mode: 0o600, flag: "wx" });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "EEXIST") throw new KeysCliError("file-exists", `${path} exists; not overwriting it`);
    throw e;
  }
}

/** libotr trust strings: what pidgin writes for an SMP and for a manual verification. */
function libotrTrust(r: FingerprintRecord): string {
  if (r.trust !== "verified") return "";
  return r.verifiedBy === "smp" ? "smp" : "verified";
}

export async function exportIdentity(opts: ExportOptions, deps: ExportDeps): Promise<ExportResult> {
  const bytes = await deps.store.getOtrPrivateKey(opts.userId, opts.networkId);
  if (!bytes) throw new KeysCliError("no-key", `${opts.userId} has no OTR key on ${opts.networkId}`);
  const stored = decodeStoredOtrKey(bytes);
  if (!stored) throw new KeysCliError("bad-stored-key", `the stored OTR key of ${opts.userId} on ${opts.networkId} does not parse`);
  const account = opts.account ?? stored.account;
  const protocol = opts.protocol ?? stored.protocol;
  const records = opts.fingerprintsFile === undefined ? [] : await deps.store.listFingerprints(opts.userId, opts.networkId);

  await writeOrFail(deps, opts.privateKeyFile, serializePrivateKeyFile([{ account, protocol, key: stored.key }]));
  if (opts.fingerprintsFile !== undefined) {
    const entries: FingerprintEntry[] = records.map((r) => ({
      username: r.peerNick, account, protocol,
      fingerprint: new Uint8Array(Buffer.from(r.fingerprint, "hex")),
      trust: libotrTrust(r),
    }));
    await writeOrFail(deps, opts.fingerprintsFile, serializeFingerprintFile(entries));
  }
  return { account, protocol, fingerprint: humanFingerprint(stored.key), fingerprints: records.length };
}
