// Sealed secrets at rest (issue 5): private keys, IRC passwords, IRC channel keys and the Matrix crypto state of
// the bridge's own devices are encrypted with XChaCha20-Poly1305 under a subkey of the master key. Random 24-byte
// nonces are safe at any realistic volume (no counter to persist, no nonce reuse after a crash or a restored
// backup; a crypto state is re-sealed on every save, which makes that matter). The associated data names the row
// the value belongs to (kind, user, network, and the channel for a channel key; kind, owner and device id for a
// crypto state), so a ciphertext copied into another user's, channel's or device's row — or from the password
// column into the key column — fails authentication instead of handing one user's secret to another.
//
// Sealed value layout: version(1) || nonce(24) || ciphertext || tag(16). The version byte is authenticated too.
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { randomBytes } from "node:crypto";
import { StoreError } from "./types.js";

export const SEAL_VERSION = 1;
export const MASTER_KEY_BYTES = 32;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + NONCE_BYTES;

/** What a sealed value is; part of the associated data so values cannot move between columns. */
export type SealKind = "otr-private-key" | "irc-password" | "channel-key" | "crypto-state" | "otr-session" | "inbox-event" | "outbox-message" | "canary";

const encoder = new TextEncoder();

function associatedData(version: number, kind: SealKind, binding: readonly string[]): Uint8Array {
  // Ids cannot contain NUL (validate.checkId), so the NUL-joined string is an unambiguous encoding of the row.
  return encoder.encode(`matrix-otr-irc/seal/v${version}\0${kind}\0${binding.join("\0")}`);
}

export class Sealer {
  private readonly key: Uint8Array;

  constructor(masterKey: Uint8Array) {
    if (!(masterKey instanceof Uint8Array) || masterKey.length !== MASTER_KEY_BYTES) {
      throw new StoreError("master-key-malformed", `the master key must be ${MASTER_KEY_BYTES} bytes`);
    }
    // A derived subkey keeps the raw master key usable for other purposes later without key reuse across them.
    this.key = hkdf(sha256, masterKey, undefined, encoder.encode("matrix-otr-irc seal key v1"), 32);
  }

  seal(kind: SealKind, binding: readonly string[], plaintext: Uint8Array): Uint8Array {
    const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
    const ct = xchacha20poly1305(this.key, nonce, associatedData(SEAL_VERSION, kind, binding)).encrypt(plaintext);
    const out = new Uint8Array(HEADER_BYTES + ct.length);
    out[0] = SEAL_VERSION;
    out.set(nonce, 1);
    out.set(ct, HEADER_BYTES);
    return out;
  }

  /** Throws `sealed-data-corrupt` when the value was tampered with, truncated, moved from another row or sealed under another key. */
  open(kind: SealKind, binding: readonly string[], sealed: Uint8Array): Uint8Array {
    const where = `${kind} of ${binding.join("/")}`;
    if (sealed.length < HEADER_BYTES + TAG_BYTES) {
      throw new StoreError("sealed-data-corrupt", `sealed ${where} is truncated`);
    }
    const version = sealed[0]!;
    if (version !== SEAL_VERSION) {
      throw new StoreError("sealed-data-corrupt", `sealed ${where} has unknown format version ${version}`);
    }
    const nonce = sealed.subarray(1, HEADER_BYTES);
    try {
      return xchacha20poly1305(this.key, nonce, associatedData(version, kind, binding)).decrypt(sealed.subarray(HEADER_BYTES));
    } catch (cause) {
      throw new StoreError(
        "sealed-data-corrupt",
        `sealed ${where} failed authentication: it was modified, copied from another row, or sealed under another master key`,
        { cause },
      );
    }
  }

  sealString(kind: SealKind, binding: readonly string[], text: string): Uint8Array {
    return this.seal(kind, binding, encoder.encode(text));
  }

  openString(kind: SealKind, binding: readonly string[], sealed: Uint8Array): string {
    return new TextDecoder("utf-8", { fatal: true }).decode(this.open(kind, binding, sealed));
  }
}

/** The canary proves at open time that the configured master key is the one that sealed this database. */
export const CANARY_BINDING = ["master-key-canary"] as const;
export const CANARY_PLAINTEXT = "matrix-otr-irc master key canary v1";
