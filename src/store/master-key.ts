// Where the master key comes from: the environment (MATRIX_OTR_IRC_MASTER_KEY, hex or base64) or a key file
// (store.master_key_file). The file is created on first start only when the database holds no sealed data yet:
// a missing key next to existing secrets means the key was lost or misconfigured, and generating a fresh key
// would silently orphan every user's OTR identity, so we refuse to start instead.
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, mkdirSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { MASTER_KEY_BYTES } from "./seal.js";
import { StoreError, type StoreConfig } from "./types.js";

export const MASTER_KEY_ENV = "MATRIX_OTR_IRC_MASTER_KEY";
export const DEFAULT_MASTER_KEY_FILE = "./data/master.key";

export type MasterKeySource = "env" | "file" | "created";

/** Accepts 64 hex digits or base64 (standard or url-safe, padding optional) of exactly 32 bytes. */
export function parseMasterKey(text: string, source: string): Uint8Array {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return new Uint8Array(Buffer.from(t, "hex"));
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    const bytes = Buffer.from(t.replace(/-/g, "+").replace(/_/g, "/"), "base64");
    if (bytes.length === MASTER_KEY_BYTES) return new Uint8Array(bytes);
  }
  throw new StoreError("master-key-malformed", `${source} must hold a ${MASTER_KEY_BYTES}-byte key as 64 hex digits or base64`);
}

export function generateMasterKey(): Uint8Array {
  return new Uint8Array(randomBytes(MASTER_KEY_BYTES));
}

export function formatMasterKey(key: Uint8Array): string {
  return Buffer.from(key).toString("hex");
}

export function masterKeyFilePath(cfg: StoreConfig): string {
  return resolve(cfg.master_key_file ?? DEFAULT_MASTER_KEY_FILE);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

/**
 * Writes a key file with mode 0600, durably (fsync of the file and its directory). The key goes to a temporary file
 * first, so a crash never leaves a half-written key file behind. With `exclusive` the file must not exist yet
 * (link() fails with EEXIST: two bridges starting at once cannot overwrite each other's fresh key); otherwise it
 * is replaced atomically by rename().
 */
export function writeMasterKeyFile(path: string, key: Uint8Array, opts: { exclusive: boolean }): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, formatMasterKey(key) + "\n");
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    if (opts.exclusive) linkSync(tmp, path);
    else renameSync(tmp, path);
  } finally {
    if (opts.exclusive) rmSync(tmp, { force: true });
  }
  fsyncDir(dir);
}

function readKeyFile(path: string): Uint8Array | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new StoreError("master-key-missing", `cannot read the master key file ${path}: ${(e as Error).message}`, { cause: e });
  }
  return parseMasterKey(text, `master key file ${path}`);
}

/**
 * Finds the master key. `sealedDataExists` must come from the database (see `storeHoldsSealedData`): only when it
 * is false may a missing key file be created.
 */
export function loadMasterKey(
  cfg: StoreConfig,
  opts: { sealedDataExists: boolean; env?: NodeJS.ProcessEnv },
): { key: Uint8Array; source: MasterKeySource; path: string | null } {
  const env = opts.env ?? process.env;
  const fromEnv = env[MASTER_KEY_ENV];
  if (fromEnv !== undefined && fromEnv.trim() !== "") {
    return { key: parseMasterKey(fromEnv, `the environment variable ${MASTER_KEY_ENV}`), source: "env", path: null };
  }
  const path = masterKeyFilePath(cfg);
  const existing = readKeyFile(path);
  if (existing) return { key: existing, source: "file", path };
  if (opts.sealedDataExists) {
    throw new StoreError(
      "master-key-missing",
      `the database holds sealed secrets but there is no master key: ${path} does not exist and ${MASTER_KEY_ENV} is unset. ` +
        `Restore the key file from your backup; a new key cannot open the existing secrets, so none is generated.`,
    );
  }
  const key = generateMasterKey();
  try {
    writeMasterKeyFile(path, key, { exclusive: true });
  } catch (e) {
    // Another process created it between our read and our write: use theirs.
    if ((e as NodeJS.ErrnoException).code === "EEXIST") {
      const theirs = readKeyFile(path);
      if (theirs) return { key: theirs, source: "file", path };
    }
    throw e;
  }
  return { key, source: "created", path };
}
